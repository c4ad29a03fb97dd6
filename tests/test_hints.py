"""Type hints of the public API: every public function and method has them, and they resolve."""
import ast
import importlib
import inspect
import types
import typing
from pathlib import Path

import pytest

import fastals

# the public API: each module's __all__ (or the names given here)
PUBLIC = {
    "fastals": None,
    "fastals.data": None,
    "fastals.id_recommender": None,
    "fastals.evaluation": None,
    "fastals.datasets": ("synthetic_interactions", "synthetic_ratings", "make_synthetic",
                         "data_home", "load", "load_movielens", "load_movielens_100k",
                         "load_movielens_100k_split", "load_lastfm_360k", "load_lastfm_hetrec"),
    "fastals.similarity": ("top_k_similarity",),
    "fastals.spark": None,
}
# names the hints import only for type checkers (pandas and pyspark are never imported for them)
TYPE_CHECKING_ONLY = {"pd": types.SimpleNamespace(DataFrame=object), "DataFrame": object,
                      "SparkSession": object, "StructField": object, "StorageLevel": object}


def _unwrap(member):
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    if isinstance(member, property):
        member = member.fget
    return member if inspect.isfunction(member) else None


def public_functions():
    """(where it is defined, function) of every public function, method and property of the
    API: each once, as the classes that users see resolve them (inherited ones included)."""
    found = set()
    for module_name, names in PUBLIC.items():
        module = importlib.import_module(module_name)
        for name in names or module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                found.add(obj)
            elif inspect.isclass(obj):
                attributes = {attr for klass in obj.__mro__
                              if klass.__module__.startswith("fastals") for attr in vars(klass)}
                for attr in sorted(attributes):
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    function = _unwrap(inspect.getattr_static(obj, attr))
                    if function is not None and function.__module__.startswith("fastals"):
                        found.add(function)
    return sorted(((f"{f.__module__}.{f.__qualname__}", f) for f in found), key=lambda t: t[0])


def missing_hints(function):
    """The parameters (and "return") of `function` that have no hint."""
    signature = inspect.signature(function)
    missing = [p.name for p in signature.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    if signature.return_annotation is inspect.Signature.empty and function.__name__ != "__init__":
        missing.append("return")
    return missing


FUNCTIONS = public_functions()


def test_the_count_sees_the_whole_api():
    names = {qualified for qualified, _ in FUNCTIONS}
    assert len(FUNCTIONS) > 120
    for expected in ("models.implicit_als.ImplicitALS.fit", "models.base.load",
                     "models.base.RecommenderBase.recommend",
                     "models.implicit_als.ImplicitALS.explain",
                     "models.explicit.ExplicitFactorizationBase.predict",
                     "models.knn.UserKNN.most_similar_users",
                     "id_recommender.IdRecommender.recommend",
                     "data.interactions.Interactions.n_users", "data.csv_reader.read_csv",
                     "evaluation.ranking_metrics_at_k", "similarity.top_k_similarity",
                     "spark._estimator.ALS.fit", "spark._model.ALSModel.transform"):
        assert f"fastals.{expected}" in names


def test_every_public_function_has_hints():
    unhinted = {qualified: missing_hints(function) for qualified, function in FUNCTIONS
                if missing_hints(function)}
    assert not unhinted, (f"{len(unhinted)} of {len(FUNCTIONS)} public functions lack hints: "
                          f"{unhinted}")


@pytest.mark.parametrize("qualified, function", FUNCTIONS, ids=[q for q, _ in FUNCTIONS])
def test_hints_resolve(qualified, function):
    typing.get_type_hints(function, localns=TYPE_CHECKING_ONLY)


def _type_checking_imports(module):
    """The names a module imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                names.update(alias.asname or alias.name for alias in statement.names)
    return names


def test_type_checkers_see_every_lazily_loaded_name():
    # fastals and fastals.data load names on first use (PEP 562), which type checkers cannot
    # follow: each imports the same names under TYPE_CHECKING
    data = importlib.import_module("fastals.data")
    assert _type_checking_imports(fastals) == set(fastals._HOMES)
    assert _type_checking_imports(data) == set(data._ABOVE)
