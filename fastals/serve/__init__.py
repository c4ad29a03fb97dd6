"""``fastals serve``: a fitted model as an HTTP JSON service (the ``fastals[serve]`` extra).

* :mod:`~fastals.serve.app` -- :func:`create_app`, the Starlette (ASGI) app: the routes
  ``/recommend`` (GET one user, POST a batch), ``/similar`` and ``/health``, the validation
  of every parameter and the JSON errors.
* :mod:`~fastals.serve.workers` -- :func:`serve`: load the model once, bind the socket
  (127.0.0.1 by default), fork the uvicorn workers that share the loaded model, supervise.

This room stands beside the command line, at the top of the package: it uses the public
:class:`~fastals.IdRecommender`, and the ``--json`` output of ``fastals recommend`` for its
results. Imports: the standard library, starlette and uvicorn (a clear ImportError naming
the extra when they are missing), :mod:`fastals.id_recommender`, :mod:`fastals.exceptions`
and :mod:`fastals.cli.commands`.
"""
from __future__ import annotations

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"fastals serve needs starlette and uvicorn ({exc.name} is missing): "
                      "pip install 'fastals[serve]'") from None

from fastals.serve.app import MAX_BATCH, MAX_BODY_BYTES, MAX_N, MAX_RESULTS, create_app
from fastals.serve.workers import serve

__all__ = ["create_app", "serve", "MAX_N", "MAX_BATCH", "MAX_BODY_BYTES", "MAX_RESULTS"]
