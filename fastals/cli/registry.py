"""The models the ``fastals`` command can fit: :data:`MODELS` maps each command-line name to
a :class:`ModelSpec` (the name of its class on the ``fastals`` module, the kind of data it
takes, a summary), :func:`resolve_model` looks the class up, and the constructor arguments
are built from the flags and ``--param NAME=VALUE`` and checked against the signature.

Imports: the standard library, :mod:`fastals.cli.console` (the errors), and inside
:func:`resolve_model` the ``fastals`` package itself.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from fastals.cli.console import CLIError, UsageError


@dataclass(frozen=True)
class ModelSpec:
    """A model the command line can fit: the class's name on the `fastals` module."""

    attribute: str
    kind: str  # "implicit" (interaction strengths) or "explicit" (ratings)
    summary: str
    similar: bool = True  # `fastals similar` can rank items by similarity with its model


MODELS = {
    "ials": ModelSpec("iALS", "implicit",
                      "iALS as Rendle et al. tune it (unobserved weight, scaled lambda), iALS++"),
    "implicit-als": ModelSpec("ImplicitALS", "implicit",
                              "implicit-feedback ALS (Hu, Koren & Volinsky), CG or Cholesky"),
    "explicit-als": ModelSpec("ExplicitALS", "explicit",
                              "ALS on ratings with biases (ALS-WR as Spark)"),
    "sgd": ModelSpec("SGDMatrixFactorization", "explicit",
                     "SGD matrix factorisation on ratings (Funk SVD)"),
    "bpr": ModelSpec("BayesianPersonalizedRanking", "implicit",
                     "Bayesian Personalized Ranking (Rendle et al.), reproducible parallel SGD"),
    "lmf": ModelSpec("LogisticMatrixFactorization", "implicit",
                     "logistic matrix factorisation (Johnson), SGD with sampled negatives"),
    "warp": ModelSpec("WARP", "implicit", "WARP ranking loss (Weston et al.), as LightFM's"),
    "item-knn": ModelSpec("ItemKNN", "implicit", "item-item nearest neighbours (cosine, BM25 ...)"),
    "ease": ModelSpec("EASE", "implicit",
                      "EASE (Steck): dense item-item weights in closed form"),
    "rp3beta": ModelSpec("RP3beta", "implicit",
                         "RP3beta: random-walk item-item neighbours with a popularity penalty"),
    "popularity": ModelSpec("PopularityBaseline", "implicit",
                            "the most popular items for everyone (a baseline)", similar=False),
}


def resolve_model(name):
    """The model class registered under `name`, looked up on the `fastals` module."""
    import fastals

    spec = MODELS.get(name)
    if spec is None:
        raise UsageError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    cls = getattr(fastals, spec.attribute, None)
    if cls is None:  # every registered model ships: only a broken installation lacks one
        raise CLIError(f"model {name} is not available in this version of fastals "
                       f"({fastals.__version__}: it has no fastals.{spec.attribute})")
    return cls


def _model_params(cls, name, args, extra):
    """Constructor arguments from the flags the user gave, checked against the signature."""
    accepted = inspect.signature(cls).parameters
    wanted = {}
    for flag, param in (("factors", "factors"), ("iterations", "iterations"),
                        ("regularization", "regularization"), ("alpha", "alpha"),
                        ("learning_rate", "learning_rate"), ("epochs", "epochs"),
                        ("neighbours", "K"), ("similarity", "similarity")):
        value = getattr(args, flag, None)
        if value is not None:
            if param not in accepted:
                raise UsageError(f"model {name} has no parameter {param!r} (--"
                                 f"{flag.replace('_', '-')}); its parameters: "
                                 f"{', '.join(accepted)}")
            wanted[param] = value
    for item in extra or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param must look like NAME=VALUE, got {item!r}")
        if key not in accepted:
            raise UsageError(f"model {name} has no parameter {key!r}; its parameters: "
                             f"{', '.join(accepted)}")
        wanted[key] = _parse_value(text)
    seed = getattr(args, "seed", None)
    if seed is not None and "random_state" in accepted and "random_state" not in wanted:
        wanted["random_state"] = seed
    threads = getattr(args, "threads", None)
    if threads is not None and "num_threads" in accepted and "num_threads" not in wanted:
        wanted["num_threads"] = threads
    return wanted


def _params_file(path, name):
    """The parameters in a best.json written by `fastals tune` ({} without one)."""
    import json

    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except OSError as exc:
        raise CLIError(f"--params {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CLIError(f"--params {path} is not JSON: {exc}") from None
    params = content.get("params") if isinstance(content, dict) else None
    if not isinstance(params, dict):
        raise CLIError(f"--params {path} has no \"params\" object (write it with fastals tune)")
    written_for = content.get("model")
    if written_for is not None and written_for != MODELS[name].attribute:
        cli_name = next((n for n, s in MODELS.items() if s.attribute == written_for), written_for)
        raise UsageError(f"--params {path} holds parameters of {written_for}: pass --model "
                         f"{cli_name}")
    return params


def _parse_value(text):
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _make_model(name, args, extra=None, defaults=None):
    cls = resolve_model(name)
    params = dict(defaults or {})
    params.update(_params_file(getattr(args, "params", None), name))
    params.update(_model_params(cls, name, args, extra))
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"model {name}: {exc}") from None

