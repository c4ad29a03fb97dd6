"""fastals.tune: reproducible with a seed, successive halving prunes and warm-starts, the
search spaces, best.json and `fastals tune` / `fastals fit --params`."""
import json
import math

import numpy as np
import pytest

import fastals
from fastals import cli
from fastals.tuning import Choice, LogUniform, _promoted, _rungs, default_search_space, tune


@pytest.fixture(scope="module")
def data():
    return fastals.datasets.make_synthetic(n_users=300, n_items=150, interactions_per_user=15,
                                           random_state=0)


def _small_space():
    return {"factors": LogUniform(4, 16, integer=True), "regularization": LogUniform(0.01, 1),
            "alpha": LogUniform(0.5, 5), "weighting": Choice(("none", "log"))}


def _tune(data, **kw):
    kw.setdefault("space", _small_space())
    return tune(fastals.ImplicitALS, data, budget=None, max_trials=6, min_resource=1,
                max_resource=4, eta=2, verbose=False, **kw)


def test_same_seed_same_result(data):
    a, b = _tune(data, random_state=3), _tune(data, random_state=3)
    assert a.best_params == b.best_params and a.best_score == b.best_score
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.scores for t in a.trials] == [t.scores for t in b.trials]
    np.testing.assert_array_equal(a.model.user_factors, b.model.user_factors)
    c = _tune(data, random_state=4)
    assert [t.params for t in c.trials] != [t.params for t in a.trials]


def test_warm_start_scores_equal_separate_fits(data):
    """A trial's score at a rung is the score of a fresh fit of exactly that many
    iterations: the rungs continue one fit rather than starting again."""
    from fastals.evaluation import ranking_metrics_at_k, train_test_split

    result = _tune(data, random_state=0)
    train, held_out = train_test_split(data, 0.2, random_state=0)
    trial = max(result.trials, key=lambda t: len(t.scores))
    for rung, score in trial.scores.items():
        model = fastals.ImplicitALS(**trial.params, iterations=rung, random_state=0).fit(
            train.user_items, show_progress=False)
        assert ranking_metrics_at_k(model, train, held_out, 10)["ndcg"] == pytest.approx(score)


def test_confirmation_refits_the_top_trials_on_more_splits(data):
    """confirm=k: the best k trials are fitted again at their best rung on
    `confirm_splits` other seeded splits, and the best mean wins (the winner's curse of one
    held-out part); the scores are those of fresh fits on those splits."""
    from fastals.evaluation import ranking_metrics_at_k, train_test_split

    result = _tune(data, confirm=3, confirm_splits=2, random_state=0)
    confirmed = [t for t in result.trials if t.confirmed]
    assert len(confirmed) == 3 and all(len(t.confirmed) == 2 for t in confirmed)
    top3 = sorted(result.trials, key=lambda t: -t.score)[:3]
    assert {t.number for t in confirmed} == {t.number for t in top3}
    best = max(confirmed, key=lambda t: t.mean_score)
    assert result.best_score == pytest.approx(best.mean_score)
    assert result.best_params == {**best.params, "iterations": best.resource}
    train, held_out = train_test_split(data, 0.2, random_state=2)  # the second extra split
    model = fastals.ImplicitALS(**best.params, iterations=best.resource, random_state=0).fit(
        train.user_items, show_progress=False)
    assert ranking_metrics_at_k(model, train, held_out, 10)["ndcg"] == pytest.approx(
        best.confirmed[1])
    assert result.leaderboard().splitlines()[1].split()[1] == str(best.number)
    assert "splits" in result.leaderboard() and "confirmed" in result.to_dict()["trials"][
        best.number]
    with pytest.raises(ValueError, match="confirm_splits"):
        _tune(data, confirm_splits=0)


def test_halving_prunes_and_the_best_is_refitted(data):
    result = _tune(data, confirm=0)
    assert any(t.pruned for t in result.trials)
    best = max(result.trials, key=lambda t: t.score)
    assert result.best_score == best.score
    assert result.best_params == {**best.params, "iterations": best.resource}
    assert result.model.factors == result.best_params["factors"]
    assert result.model.n_users == data.n_users  # refitted on all of the data


def test_rungs_and_promotion_rule():
    assert _rungs(3, 27, 3) == [3, 9, 27]
    assert _rungs(1, 4, 2) == [1, 2, 4]
    assert _rungs(5, 5, 3) == [5]
    assert _promoted(0.1, [0.1], 3, "ndcg")  # nothing to compare with yet
    assert not _promoted(0.1, [0.3, 0.2, 0.1], 3, "ndcg")
    assert _promoted(0.3, [0.3, 0.2, 0.1], 3, "ndcg")
    assert _promoted(0.5, [0.9, 0.7, 0.5], 3, "rmse")  # rmse: lower is better


def test_knn_and_popularity(data):
    knn = tune(fastals.ItemKNN, data, budget=None, max_trials=3, verbose=False)
    assert set(knn.best_params) == {"K", "similarity"} and math.isfinite(knn.best_score)
    pop = tune(fastals.PopularityBaseline, data, budget=None, max_trials=1, verbose=False)
    assert pop.best_params == {}


def test_default_spaces_are_log_scale_and_model_specific():
    als = default_search_space(fastals.ImplicitALS)
    assert {"factors", "regularization", "alpha", "weighting"} <= set(als)
    assert "iterations" not in als  # the resource, halved over
    assert set(default_search_space(fastals.ItemKNN)) == {"K", "similarity"}
    assert isinstance(default_search_space(fastals.AlternatingLeastSquares)["alpha"],
                      LogUniform)
    rng = np.random.default_rng(0)
    draws = [LogUniform(1, 1000).sample(rng) for _ in range(400)]
    assert 0.2 < np.mean(np.array(draws) < 31.6) < 0.8  # half below the geometric middle


def test_time_budget_is_kept(data):
    result = tune(fastals.ImplicitALS, data, budget=3, space=_small_space(), verbose=False)
    assert result.seconds < 3 + 2  # the last iteration and the refit may overrun a little
    assert result.trials


@pytest.mark.parametrize("kwargs, match", [
    (dict(budget=None), "budget"),
    (dict(budget="soon"), "budget"),
    (dict(metric="f1"), "metric"),
    (dict(space={"nope": LogUniform(1, 2)}), "no parameter 'nope'"),
    (dict(space={"factors": [8, 16]}), "LogUniform"),
    (dict(fixed={"nope": 1}), "no parameter 'nope'"),
])
def test_bad_arguments_are_named(data, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tune(fastals.ImplicitALS, data, **kwargs)
    with pytest.raises(TypeError, match="model_class"):
        tune("ImplicitALS", data, max_trials=1)


def test_save_writes_best_json(data, tmp_path):
    result = _tune(data)
    path = result.save(tmp_path / "best.json")
    content = json.loads(open(path).read())
    assert content["model"] == "ImplicitALS" and content["params"] == result.best_params
    assert len(content["trials"]) == len(result.trials)
    assert "rank" in result.leaderboard().splitlines()[0]


def test_cli_tune_then_fit_with_params(data, tmp_path, capsys):
    m = data.user_items.tocoo()
    csv = tmp_path / "plays.csv"
    csv.write_text("user,item,plays\n" + "".join(
        f"u{u},i{i},{int(v)}\n" for u, i, v in zip(m.row, m.col, m.data)))
    best = tmp_path / "best.json"
    assert cli.main(["tune", str(csv), "--max-trials", "3", "--budget", "30s", "-o",
                     str(best), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "rank" in printed and "best ndcg@10" in printed and "splits" in printed
    params = json.loads(best.read_text())["params"]
    # --confirm 0: the single split decides, no confirmation column or scores
    single = tmp_path / "single.json"
    assert cli.main(["tune", str(csv), "--max-trials", "3", "--budget", "30s", "--confirm",
                     "0", "-o", str(single), "--quiet"]) == 0
    assert "splits" not in capsys.readouterr().out
    assert not any("confirmed" in t for t in json.loads(single.read_text())["trials"])
    assert cli.main(["tune", str(csv), "--confirm", "-1"]) == 2
    model_file = tmp_path / "model.npz"
    assert cli.main(["fit", str(csv), "--params", str(best), "-o", str(model_file),
                     "--quiet"]) == 0
    model = fastals.load(model_file)
    assert model.factors == params["factors"] and model.iterations == params["iterations"]
    # the flags override the file
    assert cli.main(["fit", str(csv), "--params", str(best), "--factors", "3", "-o",
                     str(model_file), "--quiet"]) == 0
    assert fastals.load(model_file).factors == 3
    # a file written for another model is refused with the model to use
    assert cli.main(["fit", str(csv), "--model", "item-knn", "--params", str(best), "-o",
                     str(model_file)]) == 2
    assert "--model implicit-als" in capsys.readouterr().err
    assert cli.main(["tune", str(csv), "--budget", "soon"]) == 2


def test_parallel_trials_and_brackets(data):
    result = _tune(data, n_jobs=2)
    assert len(result.trials) == 6 and math.isfinite(result.best_score)
    # the trials shared the cores; the refit (one fit at a time) gets all of them back
    assert result.model.num_threads == 0
    assert _tune(data, n_jobs=2, fixed={"num_threads": 1}).model.num_threads == 1
    # the same configurations are drawn, whatever runs them
    assert [t.params for t in result.trials] == [t.params for t in _tune(data).trials]
    hyperband = _tune(data, brackets=3)
    assert not any(t.pruned for t in hyperband.trials[2::3])  # the last bracket never prunes
    with pytest.raises(ValueError, match="n_jobs"):
        _tune(data, n_jobs=0)


def test_trial_0_is_the_models_defaults(data):
    result = _tune(data)
    assert result.trials[0].params == {"factors": 100, "regularization": "auto", "alpha": 1.0,
                                       "weighting": "auto"}
    drawn = _tune(data, start_with_defaults=False)
    assert drawn.trials[0].params != result.trials[0].params
    # the drawn trials are the same either way
    assert [t.params for t in drawn.trials[1:]] == [t.params for t in result.trials[1:]]
    assert default_search_space(fastals.ImplicitALS)["regularization"] == \
        LogUniform(0.1, 5.0, relative_to="auto")


def test_relative_regularization_is_a_multiple_of_auto_for_each_trial(data):
    """LogUniform(relative_to="auto"): each drawn trial records the multiple and fits with
    multiple x what "auto" resolves to for its weighting and alpha on the tuning part; trial
    0 keeps "auto"; the refit and best.json get the number; same seed, same numbers."""
    from fastals.evaluation import ranking_metrics_at_k, train_test_split

    space = {**_small_space(), "regularization": LogUniform(0.5, 4, relative_to="auto")}
    result = _tune(data, space=space)
    train, held_out = train_test_split(data, 0.2, random_state=0)
    assert result.trials[0].params["regularization"] == "auto" and not result.trials[0].multiples
    for trial in result.trials[1:]:
        multiple = trial.multiples["regularization"]
        assert 0.5 <= multiple <= 4
        other = {k: v for k, v in trial.params.items() if k != "regularization"}
        auto = fastals.ImplicitALS(**other).regularization_for(train.user_items)
        assert trial.params["regularization"] == pytest.approx(multiple * auto, rel=1e-3)
    assert len({t.params["weighting"] for t in result.trials[1:]}) == 2  # both weightings seen
    # a trial's score is that of a fit with the number it recorded
    trial = max(result.trials[1:], key=lambda t: len(t.scores))
    rung, score = max(trial.scores.items())
    model = fastals.ImplicitALS(**trial.params, iterations=rung, random_state=0).fit(
        train.user_items, show_progress=False)
    assert ranking_metrics_at_k(model, train, held_out, 10)["ndcg"] == pytest.approx(score)
    assert isinstance(result.best_params["regularization"], (float, str))
    again = _tune(data, space=space)
    assert [t.params for t in again.trials] == [t.params for t in result.trials]
    saved = result.to_dict()["trials"]
    assert saved[1]["multiples_of_auto"] == result.trials[1].multiples
    # implicit's AlternatingLeastSquares: trial 0 its own 0.01, the rest multiples of "auto"
    als = tune(fastals.AlternatingLeastSquares, data, budget=None, max_trials=3,
               min_resource=1, max_resource=2, eta=2, verbose=False, space=space)
    assert als.trials[0].params["regularization"] == 0.01
    assert als.trials[1].multiples and isinstance(als.trials[1].params["regularization"], float)


@pytest.mark.parametrize("space, match", [
    ({"factors": LogUniform(4, 8, relative_to="auto")}, "relative_to='auto' is for the "
                                                        "regularization"),
])
def test_relative_regularization_only_where_auto_exists(data, space, match):
    with pytest.raises(ValueError, match=match):
        _tune(data, space=space)
    with pytest.raises(ValueError, match="relative_to='auto' is for"):
        tune(fastals.ExplicitALS, data, budget=None, max_trials=2, verbose=False,
             space={"regularization": LogUniform(0.1, 1, relative_to="auto")})
    with pytest.raises(ValueError, match="relative_to must be None or 'auto'"):
        LogUniform(0.1, 1, relative_to="mean")
    with pytest.raises(ValueError, match="integer must be False"):
        LogUniform(1, 10, integer=True, relative_to="auto")


def test_relative_regularization_where_every_factor_vanishes_is_not_fitted(data):
    import warnings

    space = {"regularization": LogUniform(50, 100, relative_to="auto")}  # far above sigma_1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "every factor vanishes" warning from a fit
        result = _tune(data, space=space, confirm=0)
    assert all(math.isnan(t.score) and t.ran == 0 for t in result.trials[1:])
    assert result.best_params["regularization"] == "auto"  # trial 0, the defaults


def test_the_confirmation_never_starves_the_search(data, monkeypatch):
    """The time kept for the confirmation is at most a quarter of the budget: when one fit
    takes more than a sixteenth of it, the search still runs trials after trial 0."""
    import time as _time

    real_fit = fastals.ImplicitALS.fit

    def slow_fit(self, *args, **kwargs):  # every fit takes >= 0.25 s of a 3 s budget
        _time.sleep(0.25)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(fastals.ImplicitALS, "fit", slow_fit)
    result = tune(fastals.ImplicitALS, data, budget=3, space=_small_space(), min_resource=1,
                  max_resource=2, eta=2, verbose=False)
    assert len(result.trials) >= 4
    assert result.seconds < 3 * 1.5


def test_a_failed_confirming_fit_leaves_that_trial_out_and_goes_on(data, monkeypatch):
    from fastals.exceptions import ModelFitError

    real_fit = fastals.ImplicitALS.fit
    calls = {"n": 0}

    def failing_once(self, *args, **kwargs):
        if kwargs.get("callback") is None:  # the confirmation's (and the refit's) fits
            calls["n"] += 1
            if calls["n"] == 1:
                raise ModelFitError("injected")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(fastals.ImplicitALS, "fit", failing_once)
    result = _tune(data, confirm=3, confirm_splits=1, random_state=0)
    confirmed = [t for t in result.trials if t.confirmed]
    assert len(confirmed) == 2  # the first of the three failed, the other two confirmed
    assert all(math.isfinite(t.mean_score) for t in confirmed)
    assert result.best_score == pytest.approx(max(t.mean_score for t in confirmed))
    top = result.leaderboard().splitlines()[1].split()
    assert "nan" not in top and int(top[1]) in {t.number for t in confirmed}


def test_relative_regularization_needs_a_model_that_takes_auto(data):
    with pytest.raises(ValueError, match="relative_to='auto' is for the regularization"):
        tune(fastals.iALS, data, budget=None, max_trials=2, verbose=False,
             space={"regularization": LogUniform(0.1, 5, relative_to="auto")})


def test_every_trial_skipped_says_why(data):
    with pytest.raises(RuntimeError, match="every trial was skipped"):
        _tune(data, start_with_defaults=False, confirm=0,
              space={"regularization": LogUniform(50, 100, relative_to="auto")})
    result = _tune(data, confirm=0,
                   space={"regularization": LogUniform(50, 100, relative_to="auto")})
    assert all(t.skipped for t in result.trials[1:]) and not result.trials[0].skipped
    assert result.to_dict()["trials"][1]["skipped"] is True
