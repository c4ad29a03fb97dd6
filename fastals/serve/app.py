"""The HTTP JSON service around a loaded :class:`~fastals.IdRecommender`: the Starlette app.

:func:`create_app` returns an ASGI application with four routes:

* ``GET /recommend?user=ID&n=10`` -- the best items for one user, by the caller's ids.
  ``filter_already_liked_items`` (default true when the model file holds the training
  interactions) leaves out what the user has; ``filter_items=ID`` (repeatable) items never
  to return.
* ``POST /recommend`` -- the same for a batch: a JSON list of user ids, or an object
  ``{"users": [...], "n": 10, "filter_already_liked_items": true, "filter_items": [...]}``.
* ``GET /similar?item=ID&n=10`` -- the items most similar to an item (``filter_items`` too).
* ``GET /health`` -- the model's class and size, and the worker's process id.

Results have the shape of ``fastals recommend --json``: ``{"user": ID, "items": [{"item":
ID, "score": S, <item metadata>...}]}`` per query. Every error is JSON, ``{"error": message,
"status": code}``: 400 a body that is not JSON, 404 an unknown user, item or route, 405 a
wrong method, 413 a body over the limit, 501 ``/similar`` of a model without similar
items (the popularity baseline), 422 a parameter out of range or of the wrong type
(and a batch asking for more than MAX_RESULTS entries, users x n).
Anything unexpected is logged with its traceback (logger ``fastals.serve``) and answered
with a generic 500 that tells nothing of the internals.

The model is called inline in the event loop: one request of a worker computes at a time
(a single-user top-N takes well under a millisecond), so concurrency comes from the worker
processes (:mod:`fastals.serve.workers`), not from threads.

Imports: the standard library, starlette, :mod:`fastals.exceptions` and, for the JSON of the
results, :mod:`fastals.cli.commands` (the ``--json`` output of ``fastals recommend``).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fastals.cli.commands import _results_json
from fastals.exceptions import IdOutOfRangeError

log = logging.getLogger("fastals.serve")

#: defaults of the limits (``fastals serve --max-n/--max-batch``); the body limit is fixed
MAX_N = 1000
MAX_BATCH = 1000
MAX_BODY_BYTES = 1 << 20
#: the most (user, item) entries one batch may ask for: len(users) x n
MAX_RESULTS = 100_000

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class RequestError(Exception):
    """A bad request: answered with `status` and the message as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status,
                        headers=headers)


# --- parameters ------------------------------------------------------------------------------
def _count(name: str, value: Any, maximum: int) -> int:
    """`value` (query text or a JSON value) as an int in 1..maximum, else a 422."""
    what = f"{name} must be an integer from 1 to {maximum}, got {value!r}"
    if isinstance(value, bool):
        raise RequestError(422, what)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("+-").isdigit() or len(text) > 20:
            raise RequestError(422, what)
        value = int(text)
    if not isinstance(value, int) or not 1 <= value <= maximum:
        raise RequestError(422, what)
    return value


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RequestError(422, f"{name} must be true or false, got {value!r}")


def _id(name: str, value: Any) -> Any:
    """A caller's id from JSON or query text: a string or an integer."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise RequestError(422, f"{name} must be a non-empty string or an integer, got "
                                f"{json.dumps(value)[:80]}")
    return value


def _query(request: Request, single: tuple[str, ...], repeated: tuple[str, ...] = ()
           ) -> dict[str, Any]:
    """The query parameters: each of `single` at most once, `repeated` as lists; others 422."""
    params = request.query_params
    unknown = sorted(set(params.keys()) - set(single) - set(repeated))
    if unknown:
        known = ", ".join(single + repeated)
        raise RequestError(422, f"unknown parameter {unknown[0]!r} (this route takes {known})")
    out: dict[str, Any] = {}
    for name in single:
        values = params.getlist(name)
        if len(values) > 1:
            raise RequestError(422, f"{name} given {len(values)} times: give it once")
        if values:
            out[name] = values[0]
    for name in repeated:
        out[name] = params.getlist(name) if name in params else None
    return out


async def _json_body(request: Request) -> Any:
    """The request body parsed as JSON, within MAX_BODY_BYTES; 400 / 413 otherwise."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
        raise RequestError(413, f"the body must be at most {MAX_BODY_BYTES} bytes, got {size}")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise RequestError(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None


# --- the service ------------------------------------------------------------------------------
class Service:
    """The routes' logic over one loaded IdRecommender (shared by every request)."""

    def __init__(self, rec, max_n: int = MAX_N, max_batch: int = MAX_BATCH) -> None:
        self.rec = rec
        self.max_n = max_n
        self.max_batch = max_batch
        self.has_interactions = rec.user_items is not None
        self.no_similar = _no_similar_items(rec)

    def _filter_liked(self, value: Any) -> bool:
        if value is None:
            return self.has_interactions
        wanted = _flag("filter_already_liked_items", value)
        if wanted and not self.has_interactions:
            raise RequestError(422, "filter_already_liked_items=true, but the model file holds "
                                    "no training interactions to filter with")
        return wanted

    def _filter_items(self, values: Any) -> list | None:
        if values is None:
            return None
        if not isinstance(values, list):
            raise RequestError(422, f"filter_items must be a list of item ids, got "
                                    f"{json.dumps(values)[:80]}")
        return [_id("filter_items", v) for v in values]

    def recommend(self, users: Any, n: Any, filter_liked: Any, filter_items: Any) -> list:
        """One result object per user of `users` (one id, or a list of ids)."""
        N = _count("n", 10 if n is None else n, self.max_n)
        if isinstance(users, list) and len(users) * N > MAX_RESULTS:
            raise RequestError(422, f"a batch may ask for at most {MAX_RESULTS} results (users "
                                    f"x n), got {len(users)} x {N}")
        liked = self._filter_liked(filter_liked)
        blocked = self._filter_items(filter_items)
        ids, scores = self.rec.recommend(users, N=N, filter_already_liked_items=liked,
                                         filter_items=blocked)
        ids_of = self.rec.users  # the queries as stored: "42" asked of integer ids is 42
        queries = ids_of.to_ids(ids_of.index(users if isinstance(users, list) else [users]))
        return _results_json(self.rec, queries, ids, scores, "user")

    def similar(self, item: Any, n: Any, filter_items: Any) -> dict:
        if self.no_similar:
            raise RequestError(501, self.no_similar)
        N = _count("n", 10 if n is None else n, self.max_n)
        ids, scores = self.rec.similar_items(item, N=N,
                                             filter_items=self._filter_items(filter_items))
        query = self.rec.items.to_ids(self.rec.items.index([item]))
        return _results_json(self.rec, query, ids, scores, "item")[0]

    def health(self) -> dict:
        model = self.rec.model
        return {"status": "ok", "model": type(model).__name__, "users": model.n_users,
                "items": model.n_items, "filters_liked_items": self.has_interactions,
                "similar_items": not self.no_similar, "pid": os.getpid()}


def _no_similar_items(rec) -> str:
    """Why the model cannot rank similar items (PopularityBaseline has no notion of them),
    or "" when it can: asked once, of the first item."""
    try:
        rec.similar_items(rec.items.ids[0], N=1)
    except (TypeError, NotImplementedError) as exc:
        return f"/similar: {exc}"
    return ""


def _guarded(handler):
    """An endpoint that answers RequestError and unknown ids as JSON 4xx, and anything else
    as a generic JSON 500 after logging it with its traceback."""

    async def endpoint(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await handler(request))
        except RequestError as exc:
            return _error(exc.status, exc.message)
        except IdOutOfRangeError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "unknown id")
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return _error(500, "internal server error")

    endpoint.__name__ = handler.__name__
    return endpoint


def create_app(rec, max_n: int = MAX_N, max_batch: int = MAX_BATCH) -> Starlette:
    """The ASGI app serving `rec`, a fitted :class:`~fastals.IdRecommender`.

    Parameters
    ----------
    rec : IdRecommender
        The model with the caller's ids (``IdRecommender.load("model.npz")``).
    max_n : int
        The largest ``n`` a request may ask for (larger: 422).
    max_batch : int
        The most users a batch ``POST /recommend`` may hold (more: 422).

    Examples
    --------
    >>> app = create_app(fastals.IdRecommender.load("model.npz"))  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)              # doctest: +SKIP
    """
    rec._require_fitted()
    service = Service(rec, max_n, max_batch)

    async def recommend(request: Request) -> dict:
        if request.method == "POST":
            return await recommend_batch(request)
        q = _query(request, ("user", "n", "filter_already_liked_items"), ("filter_items",))
        if "user" not in q:
            raise RequestError(422, "give the user: /recommend?user=ID&n=10")
        return service.recommend(_id("user", q["user"]), q.get("n"),
                                 q.get("filter_already_liked_items"), q["filter_items"])[0]

    async def recommend_batch(request: Request) -> dict:
        _query(request, ())
        body = await _json_body(request)
        options: dict[str, Any] = {}
        if isinstance(body, dict):
            unknown = sorted(set(body) - {"users", "n", "filter_already_liked_items",
                                          "filter_items"})
            if unknown:
                raise RequestError(422, f"unknown field {unknown[0]!r} (the body takes users, "
                                        "n, filter_already_liked_items, filter_items)")
            if "users" not in body:
                raise RequestError(422, 'give the users: {"users": [ID, ...]}')
            options, body = body, body["users"]
            for name, kind, what in (("n", int, "an integer"),
                                     ("filter_already_liked_items", bool, "true or false")):
                value = options.get(name)  # JSON has types: "5" or "true" is not one
                if value is not None and (type(value) is not kind):
                    raise RequestError(422, f"{name} must be {what}, got "
                                            f"{json.dumps(value)[:80]}")
        if not isinstance(body, list):
            raise RequestError(422, "the body must be a JSON list of user ids or an object "
                                    f'{{"users": [...]}}, got {json.dumps(body)[:80]}')
        if not 1 <= len(body) <= service.max_batch:
            raise RequestError(422, f"a batch must hold 1 to {service.max_batch} users, got "
                                    f"{len(body)}")
        users = [_id("users", u) for u in body]
        results = service.recommend(users, options.get("n"),
                                    options.get("filter_already_liked_items"),
                                    options.get("filter_items"))
        return {"results": results}

    async def similar(request: Request) -> dict:
        q = _query(request, ("item", "n"), ("filter_items",))
        if "item" not in q:
            raise RequestError(422, "give the item: /similar?item=ID&n=10")
        return service.similar(_id("item", q["item"]), q.get("n"), q["filter_items"])

    async def health(request: Request) -> dict:
        _query(request, ())
        return service.health()

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        message = {404: f"no route {request.url.path!r} (routes: /recommend, /similar, "
                        "/health)",
                   405: f"{request.method} is not allowed on {request.url.path} (allowed: "
                        f"{headers.get('Allow', headers.get('allow', ''))})"
                   }.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, message, headers)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # outside the endpoints (they answer their own errors); Starlette then re-raises
        # the exception, so that the server logs it with its traceback
        return _error(500, "internal server error")

    routes = [Route("/recommend", _guarded(recommend), methods=["GET", "POST"]),
              Route("/similar", _guarded(similar), methods=["GET"]),
              Route("/health", _guarded(health), methods=["GET"])]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error,
                                                       Exception: server_error})
    app.state.service = service
    return app
