"""fastals: fast recommender systems on compiled OpenMP kernels.

Models share `implicit`'s call shapes: ``fit(user_items)``, ``recommend(userid, user_items)``,
``similar_items(itemid)``, each returning ``(ids, scores)``.

Every public name is importable from here (``fastals.ImplicitALS``, ``from fastals import
*``), but each is loaded on first use (PEP 562): importing :mod:`fastals.data` or
:mod:`fastals.datasets` to read data loads no model and no compiled kernel.

This file holds public names only. May import: the standard library; the rest of the
package on first use of a name (and, for type checkers only, the homes of the names).
"""
import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AlternatingLeastSquares",
    "ApproximateIndex",
    "BM25Recommender",
    "BayesianPersonalizedRanking",
    "ContentKNN",
    "CosineRecommender",
    "EASE",
    "ExplicitALS",
    "FunkSVD",
    "IdOutOfRangeError",
    "IdRecommender",
    "ImplicitALS",
    "Interactions",
    "ItemKNN",
    "LogisticMatrixFactorization",
    "ModelFileError",
    "ModelFitError",
    "NotFittedError",
    "PopularityBaseline",
    "RP3beta",
    "RecommenderBase",
    "SGDMatrixFactorization",
    "TFIDFRecommender",
    "UserKNN",
    "WARP",
    "iALS",
    "load",
    "recall_at_n",
    "top_k_similarity",
    "tune",
]

# where each public name is defined
_HOMES = {
    "AlternatingLeastSquares": "fastals.models.implicit_als",
    "ApproximateIndex": "fastals.ann",
    "BM25Recommender": "fastals.models.knn",
    "BayesianPersonalizedRanking": "fastals.models.ranking",
    "ContentKNN": "fastals.models.knn",
    "CosineRecommender": "fastals.models.knn",
    "EASE": "fastals.models.ease",
    "ExplicitALS": "fastals.models.explicit_als",
    "FunkSVD": "fastals.models.sgd",
    "IdOutOfRangeError": "fastals.exceptions",
    "IdRecommender": "fastals.id_recommender",
    "ImplicitALS": "fastals.models.implicit_als",
    "Interactions": "fastals.data",
    "ItemKNN": "fastals.models.knn",
    "LogisticMatrixFactorization": "fastals.models.ranking",
    "ModelFileError": "fastals.exceptions",
    "ModelFitError": "fastals.exceptions",
    "NotFittedError": "fastals.exceptions",
    "PopularityBaseline": "fastals.models.popularity",
    "RP3beta": "fastals.models.rp3beta",
    "RecommenderBase": "fastals.models.base",
    "SGDMatrixFactorization": "fastals.models.sgd",
    "TFIDFRecommender": "fastals.models.knn",
    "UserKNN": "fastals.models.knn",
    "WARP": "fastals.models.ranking",
    "iALS": "fastals.models.ials",
    "load": "fastals.models.base",
    "recall_at_n": "fastals.ann",
    "top_k_similarity": "fastals.similarity",
    "tune": "fastals.tuning",
}
# submodules that ``import fastals`` made attributes of the package when it loaded them all
_SUBMODULES = ("_arrays", "_files", "_kernels", "_threads", "_validation", "data", "datasets",
               "evaluation", "exceptions", "id_recommender", "models", "similarity", "tuning")
_loaded: set[str] = set()

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads each on first use
    from fastals.ann import ApproximateIndex, recall_at_n
    from fastals.data import Interactions
    from fastals.exceptions import IdOutOfRangeError, ModelFileError, ModelFitError, \
        NotFittedError
    from fastals.id_recommender import IdRecommender
    from fastals.models.base import RecommenderBase, load
    from fastals.models.ease import EASE
    from fastals.models.explicit_als import ExplicitALS
    from fastals.models.ials import iALS
    from fastals.models.implicit_als import AlternatingLeastSquares, ImplicitALS
    from fastals.models.knn import BM25Recommender, ContentKNN, CosineRecommender, ItemKNN, \
        TFIDFRecommender, UserKNN
    from fastals.models.popularity import PopularityBaseline
    from fastals.models.ranking import BayesianPersonalizedRanking, LogisticMatrixFactorization, \
        WARP
    from fastals.models.rp3beta import RP3beta
    from fastals.models.sgd import FunkSVD, SGDMatrixFactorization
    from fastals.similarity import top_k_similarity
    from fastals.tuning import tune


def __getattr__(name: str) -> Any:
    if name in _loaded:  # loaded once and deleted since (``del fastals.X``): stays deleted
        raise AttributeError(f"module 'fastals' has no attribute {name!r}")
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"fastals.{name}")
    else:
        raise AttributeError(f"module 'fastals' has no attribute {name!r}")
    _loaded.add(name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
