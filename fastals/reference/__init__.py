"""Pure-numpy reference implementations: the oracle the compiled kernels are tested against.

They are written to read like the mathematics, not to be fast: dense per-row systems, Python
loops over rows. Use them on small inputs to check results, never for real training.
"""
from fastals.reference.explicit import (
    explicit_als_fit,
    explicit_als_loss,
    explicit_als_normal_equations,
    explicit_als_step,
    explicit_predict,
    sgd_epoch,
)
from fastals.reference.implicit_als import (
    confidence_preference,
    implicit_als_cg_step,
    implicit_als_exact_step,
    implicit_als_fit,
    implicit_als_loss,
    normal_equations,
)
from fastals.reference.similarity import (
    bm25_weight,
    similarity_matrix,
    tfidf_weight,
    top_k,
    top_k_cosine_blocked,
    top_k_similarity,
    user_knn_predict,
)

__all__ = [
    "confidence_preference",
    "explicit_als_fit",
    "explicit_als_loss",
    "explicit_als_normal_equations",
    "explicit_als_step",
    "explicit_predict",
    "implicit_als_cg_step",
    "implicit_als_exact_step",
    "implicit_als_fit",
    "implicit_als_loss",
    "normal_equations",
    "sgd_epoch",
    "bm25_weight",
    "similarity_matrix",
    "tfidf_weight",
    "top_k",
    "top_k_cosine_blocked",
    "top_k_similarity",
    "user_knn_predict",
]
from fastals.reference.metrics import list_metrics, ranking_metrics_loop  # noqa: E402

__all__ += ["list_metrics", "ranking_metrics_loop"]
