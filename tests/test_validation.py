"""Validation while training: the held-out metric per iteration, early stopping that keeps
the best iteration (equal to a fit of exactly that many iterations), validation_split, and
the arguments' errors, for every iterative model through the one shared mechanism."""
import logging

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals import evaluation as ev
from fastals.datasets import make_synthetic, synthetic_ratings
from fastals.models.validation import holdout_per_user, parse_metric


@pytest.fixture(scope="module")
def clicks():
    matrix = make_synthetic(n_users=600, n_items=300, random_state=0).user_items
    return holdout_per_user(matrix, 0.2, 0)


@pytest.fixture(scope="module")
def ratings():
    R = synthetic_ratings(300, 200, 12000, random_state=0)
    return holdout_per_user(R, 0.2, 0)


def _implicit(**kw):
    return fastals.ImplicitALS(factors=8, regularization=1.0, random_state=0, **kw)


# model factory, name of the iteration count, its value for the long fit
MODELS = {
    "implicit-als": (lambda n: _implicit(iterations=n), "clicks"),
    "alternating-least-squares": (lambda n: fastals.AlternatingLeastSquares(
        factors=8, regularization=1.0, iterations=n, random_state=0), "clicks"),
    "explicit-als": (lambda n: fastals.ExplicitALS(factors=8, regularization=0.02,
                                                   iterations=n, random_state=0), "ratings"),
    "sgd": (lambda n: fastals.FunkSVD(factors=8, epochs=n, learning_rate=0.02,
                                      random_state=0), "ratings"),
}


@pytest.mark.parametrize("name", MODELS)
def test_early_stopping_keeps_the_best_iteration(name, clicks, ratings, request):
    make, data = MODELS[name]
    train, held = clicks if data == "clicks" else ratings
    model = make(40).fit(train, show_progress=False, validation=(train, held),
                         early_stopping_rounds=2)
    metric = "ndcg@10" if data == "clicks" else "rmse"
    history = model.history[metric]
    best = model.best_iteration
    assert 1 <= best <= len(history) < 40  # it stopped early
    assert len(history) - best == 2  # after two iterations without improvement
    pick = np.argmax if data == "clicks" else np.argmin
    assert pick(history) + 1 == best
    # the kept model is a fit of exactly that many iterations
    exact = make(best).fit(train, show_progress=False)
    for attr in exact._state_names:
        np.testing.assert_array_equal(getattr(model, attr), getattr(exact, attr), err_msg=attr)
    # and its metric is the best one recorded
    if data == "clicks":
        assert ev.ndcg_at_k(model, train, held, 10) == pytest.approx(history[best - 1])
    else:
        assert ev.rmse(model, held) == pytest.approx(history[best - 1], rel=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_the_metric_is_recorded_without_stopping(name, clicks, ratings):
    make, data = MODELS[name]
    train, held = clicks if data == "clicks" else ratings
    model = make(4).fit(train, show_progress=False, validation=(train, held),
                        metric="mrr@5")
    assert len(model.history["mrr@5"]) == 4
    plain = make(4).fit(train, show_progress=False)
    for attr in plain._state_names:  # validation changes nothing about the fit
        np.testing.assert_array_equal(getattr(model, attr), getattr(plain, attr))
    assert plain.history.get("mrr@5") is None and plain.best_iteration is None
    per = ev.ranking_metrics_at_k(model, train, held, 5)
    assert model.history["mrr@5"][-1] == pytest.approx(per["mrr"])


def test_validation_split_holds_out_part_of_each_user_seeded(clicks):
    matrix = make_synthetic(n_users=200, n_items=100, random_state=1).user_items
    a = _implicit(iterations=3).fit(matrix, show_progress=False, validation_split=0.25)
    b = _implicit(iterations=3).fit(matrix, show_progress=False, validation_split=0.25)
    assert a.history["ndcg@10"] == b.history["ndcg@10"]  # seeded by random_state
    train, held = holdout_per_user(matrix, 0.25, 0)
    exact = _implicit(iterations=3).fit(train, show_progress=False)
    np.testing.assert_array_equal(a.user_factors, exact.user_factors)
    counts, held_counts = np.diff(matrix.tocsr().indptr), np.diff(held.indptr)
    assert (held_counts == np.where(counts >= 2, np.clip(np.rint(0.25 * counts), 1,
                                                          counts - 1), 0)).all()
    assert (train + held - matrix).nnz == 0 and train.multiply(held).nnz == 0


def test_holdout_per_user_by_hand():
    matrix = sp.csr_matrix(np.array([[1.0, 2, 3, 4], [5, 0, 0, 0], [0, 1, 1, 0]]))
    train, held = holdout_per_user(matrix, 0.5, 3)
    assert np.diff(held.indptr).tolist() == [2, 0, 1]
    assert np.diff(train.indptr).tolist() == [2, 1, 1]
    before = matrix.copy()
    holdout_per_user(matrix, 0.5, 3)
    assert (matrix != before).nnz == 0


def test_progress_bar_and_log_show_the_metric(clicks, caplog):
    train, held = clicks
    with caplog.at_level(logging.INFO, logger="fastals"):
        _implicit(iterations=2).fit(train, show_progress=False, validation=(train, held),
                                    metric="precision@5")
    assert "precision@5" in caplog.text


def test_callback_still_sees_each_iteration(clicks):
    train, held = clicks
    seen = []
    model = _implicit(iterations=30)
    model.fit(train, show_progress=False, validation=(train, held), early_stopping_rounds=1,
              callback=lambda i, s, v: seen.append(i))
    assert seen == list(range(len(model.history["ndcg@10"])))


def test_ranking_metric_on_an_explicit_model(ratings):
    train, held = ratings
    model = fastals.ExplicitALS(factors=4, iterations=3, random_state=0)
    model.fit(train, show_progress=False, validation=(train, held), metric="hit_rate@10")
    assert len(model.history["hit_rate@10"]) == 3
    assert model.history["hit_rate@10"][-1] == pytest.approx(
        ev.ranking_metrics_at_k(model, train, held, 10)["hit_rate"])


@pytest.mark.parametrize("text, expected", [
    ("ndcg@10", ("ndcg", 10)), ("NDCG", ("ndcg", 10)), ("precision@5", ("precision", 5)),
    ("hitrate@3", ("hit_rate", 3)), ("mrr@20", ("mrr", 20)), ("rmse", ("rmse", None)),
    ("precision_standard@7", ("precision_standard", 7)),
])
def test_parse_metric(text, expected):
    assert parse_metric(text) == expected


def test_bad_validation_arguments(clicks):
    train, held = clicks
    model = _implicit(iterations=1)
    with pytest.raises(ValueError, match="metric must be one of"):
        model.fit(train, show_progress=False, validation=(train, held), metric="ndgc@10")
    with pytest.raises(ValueError, match="rmse' needs a model that predicts"):
        model.fit(train, show_progress=False, validation=(train, held), metric="rmse")
    with pytest.raises(ValueError, match="early_stopping_rounds=3 needs validation"):
        model.fit(train, show_progress=False, early_stopping_rounds=3)
    with pytest.raises(ValueError, match="early_stopping_rounds must be a positive int"):
        model.fit(train, show_progress=False, validation=(train, held),
                  early_stopping_rounds=0)
    with pytest.raises(ValueError, match="not both"):
        model.fit(train, show_progress=False, validation=(train, held), validation_split=0.2)
    with pytest.raises(ValueError, match="validation_split must be"):
        model.fit(train, show_progress=False, validation_split=1.5)
    with pytest.raises(TypeError, match="validation must be a"):
        model.fit(train, show_progress=False, validation=held)
    with pytest.raises(ValueError, match="validation\\[1\\] \\(held_out\\) is"):
        model.fit(train, show_progress=False, validation=(train, held[:, :10]))
    with pytest.raises(ValueError, match="holds nothing out"):
        model.fit(sp.eye(5, format="csr"), show_progress=False, validation_split=0.5)


# --- the command line -------------------------------------------------------------------------
def test_cli_fit_with_validation_and_early_stopping(tmp_path, capsys, monkeypatch):
    from fastals.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["fit", "synthetic", "--factors", "4", "--iterations", "30", "-q",
                 "--validation-split", "0.2", "--metric", "precision@5",
                 "--early-stopping-rounds", "1", "-o", "m.npz"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "validation on 20% of each user's interactions" in out.out
    assert "precision@5" in out.out and "iteration" in out.out
    assert fastals.IdRecommender.load(tmp_path / "m.npz").model.iterations == 30
    assert main(["fit", "synthetic", "--metric", "ndcg@5", "-o", "m.npz", "-q"]) == 2
    assert "need --validation-split" in capsys.readouterr().err
    assert main(["fit", "synthetic", "--model", "item-knn", "--validation-split", "0.2",
                 "-o", "k.npz", "-q"]) == 2
    assert "fits in one pass" in capsys.readouterr().err
    assert main(["fit", "synthetic", "--validation-split", "1.5", "-o", "k.npz", "-q"]) == 2


def test_a_ranking_metric_runs_on_a_fixed_sample_of_many_users(clicks, monkeypatch):
    from fastals.models import validation

    train, held = clicks
    monkeypatch.setattr(validation, "MAX_VALIDATION_USERS", 100)
    model = _implicit(iterations=2).fit(train, show_progress=False, validation=(train, held))
    last = model.history["ndcg@10"][-1]
    _, check = validation.prepare_validation(_implicit(), train, (train, held))
    sampled = check.held_out
    users = np.flatnonzero(np.diff(sampled.indptr) > 0)
    assert len(users) == 100
    chosen = np.isin(np.arange(held.shape[0]), users)
    np.testing.assert_array_equal(sampled.toarray(), held.toarray() * chosen[:, None])
    assert last == pytest.approx(ev.ndcg_at_k(model, train, sampled, 10))
