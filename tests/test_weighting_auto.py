"""weighting="auto": which data count as counts, what the fit log says, that binary data and
ratings train exactly as before, fold-ins weighted like the fit, and the command line."""
import io
import logging

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals import cli
from fastals.data import log_weight
from fastals.data.weighting import COUNT_MEDIAN, COUNT_RATIO, apply_weighting, choose_weighting
from fastals.evaluation import ranking_metrics_at_k, train_test_split


def _matrix(values, n_users=40, n_items=30, seed=0):
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_items, density=0.2, format="csr", random_state=rng)
    m.data = np.resize(np.asarray(values, dtype=np.float64), m.nnz)
    return m


def _plays(seed=0, n_users=60, n_items=50):
    """Heavy-tailed counts with a large median (Last.fm-like)."""
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_items, density=0.3, format="csr", random_state=rng)
    m.data = np.round(200 * (rng.pareto(1.0, m.nnz) + 1))
    return m


@pytest.mark.parametrize("values, expected", [
    ([1.0], "none"),                        # binary
    ([1, 2, 3, 4, 5], "none"),              # ratings
    ([0.5, 1.5, 3, 4.5, 5], "none"),        # half-star ratings
    ([-3, 1, 500, 100_000], "none"),        # dislikes: not counts
])
def test_what_is_not_a_large_count(values, expected):
    assert choose_weighting(_matrix(values)).weighting == expected


@pytest.mark.parametrize("values", [
    [1, 2, 3, 5, 8, 199],                   # small counts (the demo data: median 5, max 199)
    [1, 1, 2, 4, 60],                       # a median of 2, max 60
])
def test_small_heavy_tailed_counts_get_log_too(values):
    """A deliberate change: "auto" used to leave counts with a median below 100 as they
    were (measured at the former defaults); at regularization="auto" log did better on
    counts of every median (bench/RESULTS.md)."""
    choice = choose_weighting(_matrix(values))
    assert choice.weighting == "log" and "max/median" in choice.reason


def test_large_heavy_tailed_counts_get_log():
    choice = choose_weighting(_plays())
    assert choice.weighting == "log"
    assert "median" in choice.reason and "max/median" in choice.reason
    # the thresholds of the rule are what the docs say
    assert (COUNT_RATIO, COUNT_MEDIAN) == (20.0, 100.0)


def test_not_heavy_tailed_large_values_are_left_alone():
    assert choose_weighting(_matrix([150, 200, 250, 300])).weighting == "none"  # ratio < 20


def test_empty_and_interactions_inputs():
    assert choose_weighting(sp.csr_matrix((3, 4))).weighting == "none"
    data = fastals.datasets.make_synthetic(n_users=50, n_items=40, random_state=0)
    assert choose_weighting(data).weighting == choose_weighting(data.user_items).weighting


def test_apply_weighting_never_modifies_the_input():
    m = _plays()
    before = m.data.copy()
    out = apply_weighting(m, "log")
    np.testing.assert_array_equal(m.data, before)
    np.testing.assert_allclose(out.data, np.log1p(before))
    assert apply_weighting(m, "none") is m
    with pytest.raises(ValueError, match="weighting"):
        apply_weighting(m, "bm25")


def test_bad_weighting_names_the_argument():
    with pytest.raises(ValueError, match="weighting must be one of 'auto', 'none', 'log'"):
        fastals.ImplicitALS(weighting="sqrt")


def test_defaults_implicit_and_alternating_least_squares():
    assert fastals.ImplicitALS().weighting == "auto"
    # AlternatingLeastSquares keeps implicit's behaviour: the values as given
    assert fastals.AlternatingLeastSquares().weighting == "none"


def _fit(data, **kw):
    return fastals.ImplicitALS(factors=8, iterations=4, random_state=0, **kw).fit(
        data, show_progress=False)


@pytest.mark.parametrize("values", [[1.0], [1, 2, 3, 4, 5]])
def test_binary_and_ratings_train_unweighted(values):
    m = _matrix(values)
    auto, none = _fit(m), _fit(m, weighting="none")
    assert auto.weighting_applied == "none"
    np.testing.assert_array_equal(auto.user_factors, none.user_factors)
    np.testing.assert_array_equal(auto.item_factors, none.item_factors)


def test_large_counts_train_as_log_weight_and_the_log_says_why(caplog):
    m = _plays()
    with caplog.at_level(logging.INFO, logger="fastals"):
        auto = _fit(m)
    assert auto.weighting_applied == "log"
    messages = [r.getMessage() for r in caplog.records if "weighting='auto'" in r.getMessage()]
    assert len(messages) == 1 and "chose 'log'" in messages[0] and "median" in messages[0]
    by_hand = _fit(log_weight(m), weighting="none")
    np.testing.assert_array_equal(auto.user_factors, by_hand.user_factors)
    # and the caller's matrix is untouched
    assert m.data.min() >= 200


def test_fold_in_and_explain_use_the_fit_weighting():
    m = _plays()
    model = fastals.ImplicitALS(factors=8, iterations=4, regularization=0.1,
                                random_state=0).fit(m, show_progress=False)
    reference = fastals.ImplicitALS(factors=8, iterations=4, regularization=0.1,
                                    random_state=0, weighting="none").fit(
        log_weight(m), show_progress=False)
    np.testing.assert_allclose(model.recalculate_user(3, m[3]),
                               reference.recalculate_user(3, log_weight(m[3])), rtol=1e-5)
    score, _, _ = model.explain(3, m[3], 5)
    ref_score, _, _ = reference.explain(3, log_weight(m[3]), 5)
    assert score == pytest.approx(ref_score, rel=1e-5)


def test_save_load_keeps_the_applied_weighting():
    model = _fit(_plays())
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    loaded = fastals.ImplicitALS.load(buffer)
    assert loaded.weighting == "auto" and loaded.weighting_applied == "log"


def test_movielens_binary_and_ratings_not_worse(ml100k_path):
    """The issue's test: the new default on MovieLens 100K, binary and as ratings, scores
    exactly what weighting='none' (the old default) scores."""
    data = fastals.datasets.load_movielens(ml100k_path)
    binary = data.user_items.tocsr(copy=True)
    binary.data[:] = 1
    for matrix in (binary, data.user_items):
        train, test = train_test_split(matrix, 0.2, random_state=0)
        scores = []
        for weighting in ("auto", "none"):
            model = fastals.ImplicitALS(factors=32, iterations=5, weighting=weighting,
                                        random_state=0).fit(train, show_progress=False)
            scores.append(ranking_metrics_at_k(model, train, test, 10)["ndcg"])
        assert scores[0] >= scores[1]


def test_cli_auto_notes_the_choice_and_none_is_available(tmp_path, capsys):
    rows = ["user,item,plays"]
    m = _plays().tocoo()
    rows += [f"u{u},i{i},{int(v)}" for u, i, v in zip(m.row, m.col, m.data)]
    path = tmp_path / "plays.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "model.npz"
    assert cli.main(["fit", str(path), "--factors", "4", "--iterations", "2", "-o",
                     str(out)]) == 0
    assert "weighting auto: log" in capsys.readouterr().err
    assert fastals.load(out).weighting_applied == "log"
    assert cli.main(["fit", str(path), "--factors", "4", "--iterations", "2", "--weighting",
                     "none", "-o", str(out)]) == 0
    assert fastals.load(out).weighting_applied == "none"
    # bm25 weighs the data in the command and the model is told not to weigh it again
    assert cli.main(["fit", str(path), "--factors", "4", "--iterations", "2", "--weighting",
                     "bm25", "-o", str(out)]) == 0
    assert fastals.load(out).weighting == "none"
