"""Pure-numpy reference implementations: the oracle the compiled kernels are tested against.

They are written to read like the mathematics, not to be fast: dense per-row systems, Python
loops over rows. Use them on small inputs to check results, never for real training.

May import: numpy, scipy and :mod:`fastals.exceptions`; never a kernel or a model (an oracle
that shared code with what it checks would check nothing).

Symbols
-------
Every kernel header, reference and model docstring writes the mathematics in plain text with
these symbols (code names in brackets where they differ):

=================  ===========================================================================
u, i               a user (row) and an item (column); j an item sampled as a negative
n_users, n_items   the matrix shape; n_u, n_i the stored values of row u / column i
F                  the number of factors inside kernels [``factors`` in the public API];
                   K is only ever a number of neighbours (KNN, top-K)
r_ui               the stored value of (u, i): a rating, a count or a weight
x_u, y_i           the factor rows of user u and item i [rows of ``X`` / ``Y``,
                   ``user_factors`` / ``item_factors``]
b_u, b_i, mu       user bias, item bias, global mean of the ratings (explicit models)
r^_ui              a prediction: x_u . y_i, plus mu + b_u + b_i with biases
e_ui               the error r_ui - r^_ui (explicit models)
p_ui               the preference [r_ui > 0] (implicit models)
c_ui               the confidence of (u, i): 1 + alpha |r_ui| (``"1+alpha"``) or alpha |r_ui|
                   (``"alpha"``); 1 for unobserved pairs
alpha              the confidence scale [``alpha``]
alpha_0            iALS's unobserved weight [``unobserved_weight``]; w_ui its observed
                   weight 1 + alpha |r_ui|; nu the regularization exponent
                   [``regularization_exponent``]: lambda_u = lambda (n_u + alpha_0 n_items)^nu
lambda             the regularization [``regularization``]; lambda_U, lambda_I, lambda_bU,
                   lambda_bI its per-side / bias parts; s_u, s_i the ALS-WR row weights
lr, beta           SGD's learning rate and L2 weight; lr_b, beta_b those of the biases
YtY                the Gram matrix Y^T Y (float64 where it is accumulated)
X                  in EASE and RP3beta only (Steck's notation): the users x items matrix
                   of the r_ui, not the user factors
B, P               EASE's items x items weights (zero diagonal) and the precision matrix
                   P = (X^T X + lambda I)^-1 [``item_weights``, ``precision_diagonal``]
W, P_ui, P_iu      RP3beta's walk similarity and its transition probabilities; there
                   alpha and beta are the walk's exponents [``alpha``, ``beta``], not the
                   confidence scale and SGD's weight
sim(a, b)          a similarity of two sparse rows; for Pearson,
                   sim = (a . b) scale_a scale_b - shift_a shift_b with
                   scale = 1 / |a - mean_a| and shift = sqrt(n) mean_a scale (both >= 0 terms,
                   the minus sign is the formula's)
=================  ===========================================================================
"""
from fastals.reference.explicit import (
    explicit_als_fit,
    explicit_als_loss,
    explicit_als_normal_equations,
    explicit_als_step,
    explicit_predict,
    sgd_epoch,
)
from fastals.reference.ials import (
    ials_fit,
    ials_loss,
    rendle_regularization,
    row_objectives,
    row_system,
    subspace_step,
)
from fastals.reference.implicit_als import (
    confidence_preference,
    implicit_als_cg_step,
    implicit_als_exact_step,
    implicit_als_fit,
    implicit_als_loss,
    normal_equations,
)
from fastals.reference.itemitem import (
    ease_precision,
    ease_similarity,
    ease_weights,
    rp3beta_similarity,
    rp3beta_walk,
)
from fastals.reference.retrieval import top_n_dot
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
    "ease_precision",
    "ease_similarity",
    "ease_weights",
    "explicit_als_fit",
    "explicit_als_loss",
    "explicit_als_normal_equations",
    "explicit_als_step",
    "explicit_predict",
    "ials_fit",
    "ials_loss",
    "implicit_als_cg_step",
    "implicit_als_exact_step",
    "implicit_als_fit",
    "implicit_als_loss",
    "normal_equations",
    "rendle_regularization",
    "row_objectives",
    "row_system",
    "rp3beta_similarity",
    "rp3beta_walk",
    "sgd_epoch",
    "subspace_step",
    "top_n_dot",
    "bm25_weight",
    "similarity_matrix",
    "tfidf_weight",
    "top_k",
    "top_k_cosine_blocked",
    "top_k_similarity",
    "user_knn_predict",
]
from fastals.reference.metrics import (  # noqa: E402
    bootstrap_loop,
    intra_list_diversity_loop,
    list_metrics,
    novelty_loop,
    popularity_percentile_loop,
    ranking_metrics_loop,
)

__all__ += ["bootstrap_loop", "intra_list_diversity_loop", "list_metrics", "novelty_loop",
            "popularity_percentile_loop", "ranking_metrics_loop"]
