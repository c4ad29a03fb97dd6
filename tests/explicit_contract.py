"""Behaviour every explicit-ratings model shows (ExplicitALS, SGDMatrixFactorization).

:class:`ExplicitModelContract` extends the recommender mixin every fastals model runs
(recommender_base_test.py) with what explicit ratings add: predict, the unknown-id
fallback, RMSE/MAE, stored zeros as ratings, duplicates refused. A test file subclasses it
and defines ``model_class``, ``make(**params)`` (a model that fits the small matrices below
well), ``recovery_params`` (near-exact fit of a noise-free low-rank matrix) and the
MovieLens 100K threshold, which the class defaults must meet.
"""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals.datasets import MOVIELENS_100K_SPLITS, load_movielens_100k_split
from fastals.exceptions import IdOutOfRangeError, NotFittedError
from recommender_base_test import RecommenderBaseTestMixin


def low_rank_ratings(n_users, n_items, rank, density, seed, noise=0.0, offset=3.0):
    """(observed CSR, dense truth): truth = offset + U V^T (+ noise on the observed entries)."""
    rng = np.random.default_rng(seed)
    truth = offset + rng.standard_normal((n_users, rank)) @ rng.standard_normal((rank, n_items)) \
        / np.sqrt(rank)
    mask = rng.random((n_users, n_items)) < density
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = True  # every user rates
    mask[rng.integers(0, n_users, n_items), np.arange(n_items)] = True  # every item is rated
    rows, cols = np.nonzero(mask)
    values = truth[rows, cols] + noise * rng.standard_normal(len(rows))
    return sp.csr_matrix((values, (rows, cols)), shape=truth.shape), truth


def star_ratings(n_users=60, n_items=40, density=0.25, seed=0):
    """Small 1..5 star ratings with some structure."""
    observed, _ = low_rank_ratings(n_users, n_items, 3, density, seed, noise=0.3)
    observed.data = np.clip(np.round(observed.data), 1, 5)
    return observed


def checkerboard_ratings(n):
    """n x n stars: 5 where u + i is even, 1 where odd. The diagonal (a 5) is not rated, nor
    are half the 1s (u + i = 3 mod 4), so each user's best unrated item is the diagonal."""
    u, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    stars = np.where((u + i) % 2 == 0, 5.0, 1.0)
    rated = (u != i) & ((u + i) % 4 != 3)
    return sp.csr_matrix((stars[rated], (u[rated], i[rated])), shape=(n, n))


class ExplicitModelContract(RecommenderBaseTestMixin):
    model_class = None  # the class under test
    movielens_threshold = None  # mean test RMSE over u1..u5 with the class defaults

    def make(self, **params):
        raise NotImplementedError

    recovery_params: dict = {}

    # --- the shared recommender mixin, on explicit ratings ---------------------------------
    def make_model(self):
        return self.make(factors=2, random_state=0)

    def fitted(self, data=None):
        data = checkerboard_ratings(self.n) if data is None else data
        return self.make_model().fit(data, show_progress=False), data

    def test_input_not_modified(self):
        """(The mixin's version stores a pair twice, which explicit ratings refuse.)"""
        ratings = sp.coo_matrix(star_ratings())
        before = (ratings.row.copy(), ratings.col.copy(), ratings.data.copy())
        self.make(random_state=0).fit(ratings, show_progress=False)
        for a, b in zip(before, (ratings.row, ratings.col, ratings.data)):
            np.testing.assert_array_equal(a, b)

    @pytest.fixture(scope="class")
    def star_model(self):
        ratings = star_ratings()
        return self.make(random_state=0).fit(ratings, show_progress=False), ratings

    # --- predict --------------------------------------------------------------------------------
    def test_predict_is_the_model_formula(self, star_model):
        model, ratings = star_model
        users, items = np.array([0, 5, 7]), np.array([1, 2, 39])
        expected = model.global_mean * model.biases + model.user_bias[users] \
            + model.item_bias[items] + np.sum(model.user_factors[users]
                                              * model.item_factors[items], axis=1)
        got = model.predict(users, items, clip=False)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)  # float32 model
        clipped = model.predict(users, items)
        np.testing.assert_allclose(clipped, np.clip(got, 1, 5))
        assert model.rating_range == (1.0, 5.0)

    def test_predict_scalars_and_broadcasting(self, star_model):
        model, _ = star_model
        single = model.predict(3, 4)
        assert isinstance(single, float)
        row = model.predict(3, [4, 5, 6])
        assert row.shape == (3,) and row[0] == pytest.approx(single)
        column = model.predict([3, 4], 6)
        assert column.shape == (2,) and column[0] == pytest.approx(row[2])
        assert model.predict(np.array([], dtype=int), np.array([], dtype=int)).shape == (0,)

    def test_unknown_ids_fall_back_to_the_baseline(self):
        ratings = star_ratings().tolil()
        ratings[:, 7] = 0  # item 7: no ratings
        ratings = sp.csr_matrix(ratings)
        ratings.eliminate_zeros()
        model = self.make(random_state=0).fit(ratings, show_progress=False)
        users = np.array([0, 0, 60, 1000, 60])
        items = np.array([1, 7, 1, 3, 500])
        predictions, known = model.predict(users, items, clip=False, return_known=True)
        assert known.tolist() == [True, False, False, False, False]
        assert np.isfinite(predictions).all()
        mu = model.global_mean
        assert mu == pytest.approx(ratings.data.mean())
        b = model.user_bias if model.biases else np.zeros(model.n_users)
        c = model.item_bias if model.biases else np.zeros(model.n_items)
        np.testing.assert_allclose(predictions[1:], [mu + b[0], mu + c[1], mu + c[3], mu],
                                   rtol=1e-6)
        with pytest.warns(UserWarning, match="4 of 5 .* baseline"):
            model.predict(users, items)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.predict(users[:1], items[:1])  # all known: no warning
        # the same fallback inside evaluate, which reports how many ratings used it
        test = sp.csr_matrix(([4.0, 3.0], ([0, 2], [7, 8])), shape=(61, 41))
        report = model.evaluate(test)
        assert report["n_unknown"] == 1 and report["n_ratings"] == 2

    def test_predict_rejects_bad_ids(self, star_model):
        model, _ = star_model
        with pytest.raises(ValueError, match="same length, got 2 and 3"):
            model.predict([0, 1], [0, 1, 2])
        with pytest.raises(IdOutOfRangeError, match="user_ids -1"):
            model.predict([-1], [0])
        with pytest.raises(IdOutOfRangeError, match="item_ids -5"):
            model.predict([0], [-5])
        with pytest.raises(TypeError, match="user_ids must be integer ids"):
            model.predict([0.5], [1])
        with pytest.raises(ValueError, match="item_ids must be an id or a 1-D array"):
            model.predict([0], [[1]])
        with pytest.raises(TypeError, match="clip must be True or False"):
            model.predict(0, 0, clip="yes")

    # --- evaluation ------------------------------------------------------------------------------
    def test_rmse_and_mae_match_predictions(self, star_model):
        model, ratings = star_model
        coo = ratings.tocoo()
        predictions = model.predict(coo.row, coo.col)
        errors = coo.data - predictions
        assert model.rmse(ratings) == pytest.approx(np.sqrt(np.mean(errors ** 2)))
        assert model.mae(ratings) == pytest.approx(np.mean(np.abs(errors)))
        # the library-wide metrics agree, from the model or from the predictions
        assert fastals.evaluation.rmse(coo.data, predictions) == pytest.approx(
            model.rmse(ratings))
        assert fastals.evaluation.rmse(model, ratings) == pytest.approx(model.rmse(ratings))
        assert fastals.evaluation.mae(model, ratings) == pytest.approx(model.mae(ratings))
        assert model.rmse(ratings) < 0.7  # it learnt the structure of its training data
        with pytest.raises(ValueError, match="ratings is empty"):
            model.rmse(sp.csr_matrix((60, 40)))

    def test_cross_validate(self):
        scores = fastals.evaluation.cross_validate(self.make(random_state=0), star_ratings(),
                                                   folds=3, measures=["rmse", "mae"],
                                                   random_state=0)
        assert scores["rmse"].shape == (3,) and np.all(scores["rmse"] < 1.2)
        assert np.all(scores["mae"] <= scores["rmse"])

    # --- the shared recommender contract --------------------------------------------------------
    def test_recommend_ranks_by_predicted_rating(self, star_model):
        model, ratings = star_model
        ids, scores = model.recommend(2, ratings[2], N=10)
        assert len(ids) == 10 and np.all(np.diff(scores) <= 0)
        assert not set(ids) & set(ratings[2].indices)
        np.testing.assert_allclose(scores, model.predict(2, ids, clip=False), rtol=1e-5,
                                   atol=1e-5)
        unfiltered, _ = model.recommend(2, N=model.n_items, filter_already_liked_items=False)
        assert sorted(unfiltered) == list(range(model.n_items))
        batch_ids, _ = model.recommend([2, 3], ratings[[2, 3]], N=5)
        assert batch_ids.shape == (2, 5) and list(batch_ids[0]) == list(ids[:5])
        with pytest.raises(IdOutOfRangeError):
            model.recommend(60, ratings[0])

    def test_recommend_recalculates_users_from_their_ratings(self, star_model):
        model, ratings = star_model
        new_user = sp.csr_matrix(([5.0, 5.0, 1.0], ([0, 0, 0], [1, 2, 3])), shape=(1, 40))
        ids, scores = model.recommend(1000, new_user, N=5, recalculate_user=True)
        assert len(ids) == 5 and np.isfinite(scores).all() and not {1, 2, 3} & set(ids)
        known, known_scores = model.recommend(4, ratings, N=5, recalculate_user=True)
        assert np.isfinite(known_scores).all()

    def test_save_and_load(self, star_model, tmp_path):
        model, ratings = star_model
        path = model.save(tmp_path / "model")
        loaded = fastals.load(path)
        assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
        users, items = np.arange(60), np.arange(60) % 40
        np.testing.assert_array_equal(loaded.predict(users, items), model.predict(users, items))
        assert loaded.global_mean == model.global_mean
        assert loaded.rating_range == model.rating_range
        np.testing.assert_array_equal(loaded.recommend(0, ratings[0])[0],
                                      model.recommend(0, ratings[0])[0])

    def test_not_fitted(self):
        with pytest.raises(NotFittedError):
            self.make().predict(0, 0)
        with pytest.raises(NotFittedError):
            self.make().rmse(star_ratings())

    # --- ratings input ------------------------------------------------------------------------
    def test_a_stored_zero_is_a_rating(self):
        ratings = star_ratings()
        ratings.data -= 1  # ratings 0..4: some stored zeros
        assert (ratings.data == 0).any()
        coo = sp.coo_matrix(ratings)
        model = self.make(random_state=0).fit(coo, show_progress=False)
        assert model.user_counts.sum() == coo.nnz
        assert model.global_mean == pytest.approx(coo.data.mean())
        assert model.rating_range == (0.0, 4.0)
        # recommend does not offer an item the user rated 0
        user = int(coo.row[coo.data == 0][0])
        zero_item = int(coo.col[(coo.row == user) & (coo.data == 0)][0])
        ids, _ = model.recommend(user, ratings[user], N=40)
        assert zero_item not in ids

    def test_duplicate_ratings_are_refused(self):
        coo = sp.coo_matrix(([4.0, 5.0, 3.0], ([0, 0, 1], [2, 2, 0])), shape=(3, 3))
        with pytest.raises(ValueError, match="1 duplicate entries \\(first: row 0, column 2\\)"):
            self.make().fit(coo, show_progress=False)

    @pytest.mark.parametrize("bad, message", [
        (np.nan, "ratings contains NaN or infinite values"),
        (np.inf, "ratings contains NaN or infinite values"),
    ])
    def test_non_finite_ratings(self, bad, message):
        ratings = star_ratings()
        ratings.data[5] = bad
        with pytest.raises(ValueError, match=message):
            self.make().fit(ratings, show_progress=False)

    @pytest.mark.parametrize("ratings, error, message", [
        (sp.csr_matrix((5, 4)), ValueError, "ratings is empty"),
        (sp.csr_matrix((0, 0)), ValueError, "ratings is empty"),
        (np.ones((3, 3)), TypeError, "ratings must be a scipy sparse matrix"),
        (sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=complex)), TypeError, "real numbers"),
    ])
    def test_bad_ratings(self, ratings, error, message):
        with pytest.raises(error, match=message):
            self.make().fit(ratings, show_progress=False)

    def test_float64_and_float32_agree(self):
        ratings = star_ratings()
        m64 = self.make(random_state=0, dtype=np.float64, num_threads=1).fit(
            ratings, show_progress=False)
        m32 = self.make(random_state=0, dtype=np.float32, num_threads=1).fit(
            ratings, show_progress=False)
        assert m64.user_factors.dtype == np.float64 and m32.user_factors.dtype == np.float32
        # both precisions learn equally well (ExplicitALS also agrees value by value: see its
        # tests; SGD draws its initial factors in the model dtype, so its path differs)
        assert m32.rmse(ratings) == pytest.approx(m64.rmse(ratings), abs=0.02)

    # --- quality --------------------------------------------------------------------------------
    def test_recovers_a_noise_free_low_rank_matrix(self):
        observed, truth = low_rank_ratings(80, 60, 3, 0.5, seed=4)
        model = self.make(random_state=0, dtype=np.float64, **self.recovery_params)
        model.fit(observed, show_progress=False)
        coo = observed.tocoo()
        train = model.predict(coo.row, coo.col, clip=False)
        assert np.sqrt(np.mean((train - coo.data) ** 2)) < 0.02
        hidden = ~observed.toarray().astype(bool)
        rows, cols = np.nonzero(hidden)
        held_out = model.predict(rows, cols, clip=False)
        assert np.sqrt(np.mean((held_out - truth[rows, cols]) ** 2)) < 0.1

    def test_movielens_100k_canonical_splits(self, ml100k_path):
        errors = []
        for split in MOVIELENS_100K_SPLITS:
            train, test = load_movielens_100k_split(split, ml100k_path)
            model = self.model_class(random_state=0).fit(train, show_progress=False)
            errors.append(model.rmse(test))
        assert np.mean(errors) <= self.movielens_threshold, errors
