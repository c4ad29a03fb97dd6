"""fastals: fast recommender systems on compiled OpenMP kernels.

Models share `implicit`'s call shapes: ``fit(user_items)``, ``recommend(userid, user_items)``,
``similar_items(itemid)``, each returning ``(ids, scores)``.
"""
from fastals.exceptions import IdOutOfRangeError, ModelFileError, ModelFitError, NotFittedError
from fastals.models.base import RecommenderBase, load
from fastals.models.explicit_als import ExplicitALS
from fastals.models.implicit_als import AlternatingLeastSquares, ImplicitALS
from fastals.models.knn import (
    BM25Recommender,
    ContentKNN,
    CosineRecommender,
    ItemKNN,
    TFIDFRecommender,
    UserKNN,
)
from fastals.models.sgd import FunkSVD, SGDMatrixFactorization
from fastals.similarity import top_k_similarity
from fastals import data, datasets, evaluation  # noqa: E402  (plumbing: ids, data, metrics)
from fastals.data import Interactions
from fastals.id_recommender import IdRecommender
from fastals.models.popularity import PopularityBaseline

__version__ = "0.1.0"

__all__ = [
    "AlternatingLeastSquares",
    "BM25Recommender",
    "ContentKNN",
    "CosineRecommender",
    "ExplicitALS",
    "FunkSVD",
    "IdOutOfRangeError",
    "IdRecommender",
    "ImplicitALS",
    "Interactions",
    "ItemKNN",
    "ModelFileError",
    "ModelFitError",
    "NotFittedError",
    "PopularityBaseline",
    "RecommenderBase",
    "SGDMatrixFactorization",
    "TFIDFRecommender",
    "UserKNN",
    "load",
    "top_k_similarity",
]
