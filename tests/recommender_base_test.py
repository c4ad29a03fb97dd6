"""Behaviour every fastals recommender must show, as a mixin each model's tests inherit.

A test class defines `make_model()` (an unfitted model with a fixed seed; for factor models
use as many factors as the checkerboard's rank, 2, so the held-out cell is not fitted); the
checks use only the public API: what a user sees.
"""
import io
import logging

import numpy as np
import pytest
import scipy.sparse as sp

import fastals


def checkerboard(n, held_out_diagonal=True):
    """n x n: user u likes item i when u + i is even; the diagonal is held out if asked."""
    u, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    liked = (u + i) % 2 == 0
    if held_out_diagonal:
        liked &= u != i
    return sp.csr_matrix(liked.astype(np.float64))


def without(data, index):
    """`data` with row and column `index` emptied (no stored value, not even a zero)."""
    coo = data.tocoo()
    keep = (coo.row != index) & (coo.col != index)
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=data.shape)


class RecommenderBaseTestMixin:
    n = 50
    has_users = True  # similar_users is defined

    def make_model(self):
        raise NotImplementedError

    def fitted(self, data=None):
        data = checkerboard(self.n) if data is None else data
        return self.make_model().fit(data, show_progress=False), data

    def test_checkerboard_top1_is_held_out_item(self):
        model, data = self.fitted()
        ids, _ = model.recommend(np.arange(self.n), data, N=1)
        np.testing.assert_array_equal(ids[:, 0], np.arange(self.n))

    def test_recommend_never_returns_liked_items(self):
        model, data = self.fitted()
        for u in range(0, self.n, 7):
            ids, scores = model.recommend(u, data[u], N=self.n)
            assert not set(ids) & set(data[u].indices)
            assert np.all(np.diff(scores) <= 0)
            assert len(ids) == self.n - data[u].nnz

    def test_batch_equals_single(self):
        model, data = self.fitted()
        users = np.array([3, 0, 17, 3])
        ids, scores = model.recommend(users, data[users], N=5)
        assert ids.shape == scores.shape == (4, 5)
        for row, u in enumerate(users):
            one_ids, one_scores = model.recommend(u, data[u], N=5)
            np.testing.assert_array_equal(ids[row], one_ids)
            np.testing.assert_allclose(scores[row], one_scores, rtol=1e-6)

    def test_recommend_all_equals_recommend(self):
        model, data = self.fitted()
        ids, scores = model.recommend_all(data, N=5)
        want_ids, want_scores = model.recommend(np.arange(self.n), data, N=5)
        width = want_ids.shape[1]
        np.testing.assert_array_equal(ids[:, :width], want_ids)
        np.testing.assert_array_equal(scores[:, :width], want_scores)
        assert (ids[:, width:] == -1).all()

    def test_full_matrix_accepted_for_user_items(self):
        model, data = self.fitted()
        a = model.recommend(np.array([1, 2, 5]), data, N=4)
        b = model.recommend(np.array([1, 2, 5]), data[[1, 2, 5]], N=4)
        np.testing.assert_array_equal(a[0], b[0])

    def test_filter_items_and_items_respected(self):
        model, data = self.fitted()
        banned = np.arange(0, self.n, 3)
        ids, _ = model.recommend(4, data[4], N=self.n, filter_items=banned)
        assert not set(ids) & set(banned)
        allowed = np.array([1, 4, 9, 10, 33])
        ids, _ = model.recommend(4, data[4], N=10, items=allowed,
                                 filter_already_liked_items=False)
        assert set(ids) == set(allowed)
        # as in implicit: every listed item is ranked; already-liked ones come last at -inf
        ids, scores = model.recommend(4, data[4], N=10, items=allowed, filter_items=[9])
        liked = set(data[4].indices) & set(allowed)
        assert set(ids) == set(allowed) - {9}
        assert set(ids[np.isfinite(scores)]) == set(allowed) - {9} - liked
        assert set(ids[len(ids) - len(liked - {9}):]) == liked - {9}
        assert np.all(np.isneginf(scores[len(ids) - len(liked - {9}):]))
        ids, scores = model.recommend([4, 5], data[[4, 5]], N=3, items=allowed)
        assert ids.shape == (2, 3) and (ids >= 0).all()
        for row, user in enumerate([4, 5]):
            finite = np.isfinite(scores[row])
            assert not set(ids[row][finite]) & set(data[user].indices)
            assert list(finite) == sorted(finite, reverse=True)

    def test_N_larger_than_items_returns_every_allowed_item(self):
        model, data = self.fitted()
        ids, scores = model.recommend(0, data[0], N=10 * self.n)
        assert sorted(ids) == sorted(set(range(self.n)) - set(data[0].indices))
        ids, scores = model.recommend([0, 1], data[[0, 1]], N=10 * self.n,
                                      filter_already_liked_items=False)
        assert ids.shape == (2, self.n)
        assert np.isfinite(scores).all()

    def test_similar_items_shapes_and_batch(self):
        model, _ = self.fitted()
        ids, scores = model.similar_items(2, N=5)
        assert ids.shape == (5,) and np.all(np.diff(scores) <= 1e-6)
        batch_ids, _ = model.similar_items([2, 7], N=5)
        np.testing.assert_array_equal(batch_ids[0], ids)
        ids, _ = model.similar_items(2, N=5, filter_items=[2])
        assert 2 not in ids
        ids, _ = model.similar_items(2, N=5, items=[1, 3, 5])
        assert set(ids) <= {1, 3, 5}

    def test_no_similarity_for_items_and_users_without_interactions(self, tmp_path):
        """An item with no stored value in the training data has no meaningful similarity:
        it is never anyone's neighbour (with items= and filter_items= too), and its own
        neighbours are none (empty, or a padded row in a batch). Likewise for users."""
        _, data = self.fitted()
        empty = self.n - 8
        model = self.make_model().fit(without(data, empty), show_progress=False)
        others = np.delete(np.arange(self.n), empty)
        loaded = fastals.load(model.save(tmp_path / "model"))
        axes = [("item", "similar_items", "filter_items", "items")]
        if self.has_users:
            axes.append(("user", "similar_users", "filter_users", "users"))
        for m in (model, loaded):
            for axis, method, filter_name, subset_name in axes:
                similar = getattr(m, method)
                ids, _ = similar(others, N=self.n)
                assert empty not in ids, f"{axis} {empty} is among the neighbours"
                ids, _ = similar(3, N=self.n, **{subset_name: [1, 3, empty, 7]})
                assert empty not in ids and 3 in ids
                ids, _ = similar(4, N=self.n, **{filter_name: [0]})
                assert empty not in ids and 0 not in ids
                ids, scores = similar(empty, N=5)
                assert ids.shape == scores.shape == (0,), f"{axis} {empty} has neighbours"
                ids, scores = similar([others[0], empty], N=5)
                assert ids.shape == (2, 5) and (ids[0] >= 0).all()
                assert (ids[1] == -1).all() and np.isneginf(scores[1]).all()

    def test_similar_items_and_users_keep_the_checkerboard_parity(self):
        """`implicit`'s similar-items test: on the checkerboard, the 10 nearest items of an
        item (and users of a user) are of its own parity."""
        model, _ = self.fitted()
        queries = np.arange(self.n)
        methods = [model.similar_items] + ([model.similar_users] if self.has_users else [])
        for similar in methods:
            ids, _ = similar(queries, N=10)
            assert ids.shape == (self.n, 10)
            np.testing.assert_array_equal(ids % 2, np.repeat(queries[:, None] % 2, 10, axis=1))

    def test_save_load_roundtrip(self, tmp_path):
        model, data = self.fitted()
        path = model.save(tmp_path / "model")
        assert str(path).endswith(".npz")
        loaded = fastals.load(path)
        assert type(loaded) is type(model)
        a = model.recommend([0, 5], data[[0, 5]], N=5)
        b = loaded.recommend([0, 5], data[[0, 5]], N=5)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
        assert type(model).load(path).get_params() == loaded.get_params()
        # as in implicit, the name given to save loads what it wrote (".npz" appended)
        assert fastals.load(tmp_path / "model").get_params() == loaded.get_params()

    def test_save_load_with_file_objects(self, tmp_path):
        """As in `implicit`: an open binary file instead of a path, written and read at its
        current position and left open."""
        model, data = self.fitted()
        expected = model.recommend([0, 5], data[[0, 5]], N=5)
        buffer = io.BytesIO()
        buffer.write(b"the caller's own bytes first")
        start = buffer.tell()
        assert model.save(buffer) is buffer and not buffer.closed
        buffer.seek(start)
        loaded = type(model).load(buffer)
        assert not buffer.closed and type(loaded) is type(model)
        assert loaded.get_params() == model.get_params()
        got = loaded.recommend([0, 5], data[[0, 5]], N=5)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        path = tmp_path / "model.npz"
        with open(path, "wb") as f:
            model.save(f)
            assert not f.closed
        with open(path, "rb") as f:
            from_file = fastals.load(f)
        np.testing.assert_array_equal(from_file.recommend([0, 5], data[[0, 5]], N=5)[0],
                                      expected[0])
        assert fastals.load(path).get_params() == model.get_params()  # the same bytes as a path
        with open(tmp_path / "text.npz", "w") as f, pytest.raises(TypeError, match="binary"):
            model.save(f)

    def test_an_unfitted_model_saves_and_loads_unfitted(self, tmp_path):
        """As in `implicit`: the parameters are saved, and the loaded model is unfitted,
        with equal parameters, and fits as a new one does."""
        model = self.make_model()
        path = model.save(tmp_path / "unfitted")
        buffer = io.BytesIO()
        model.save(buffer)
        buffer.seek(0)
        for loaded in (fastals.load(path), type(model).load(buffer)):
            assert type(loaded) is type(model) and not loaded.is_fitted
            assert loaded.get_params() == model.get_params()
            with pytest.raises(fastals.NotFittedError):
                loaded.similar_items(0)
        refit, data = self.fitted()
        loaded.fit(data, show_progress=False)
        users = np.arange(0, self.n, 5)
        np.testing.assert_array_equal(loaded.recommend(users, data[users], N=5)[0],
                                      refit.recommend(users, data[users], N=5)[0])

    def test_other_formats_are_converted_and_the_conversion_is_logged(self, caplog):
        """`implicit` warns when fit gets a matrix that is not CSR; fastals converts any
        format and says what it converted at debug level (the "fastals" logger)."""
        model, data = self.fitted()
        with caplog.at_level(logging.DEBUG, logger="fastals"):
            from_coo = self.make_model().fit(sp.coo_matrix(data), show_progress=False)
        messages = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
        assert any("COO matrix of float64" in m and "to CSR of" in m for m in messages), messages
        users = np.arange(0, self.n, 7)
        np.testing.assert_array_equal(from_coo.recommend(users, data[users], N=5)[0],
                                      model.recommend(users, data[users], N=5)[0])
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="fastals"):
            ids, _ = model.recommend(users, data.tocsc(), N=5)  # accepted, unlike implicit
        assert any("CSC matrix" in r.getMessage() for r in caplog.records)
        np.testing.assert_array_equal(ids, model.recommend(users, data[users], N=5)[0])

    def test_bad_ids_and_arguments(self):
        model, data = self.fitted()
        with pytest.raises(ValueError, match="userid"):
            model.recommend(self.n, data[[0]], N=5)
        with pytest.raises(ValueError, match="userid"):
            model.recommend(-1, data[[0]], N=5)
        with pytest.raises(TypeError, match="userid"):
            model.recommend("7", data[[0]], N=5)
        with pytest.raises(ValueError, match="N"):
            model.recommend(0, data[0], N=0)
        with pytest.raises(ValueError, match="user_items"):
            model.recommend(0, sp.csr_matrix((1, self.n + 1)), N=5)
        with pytest.raises(ValueError, match="user_items"):
            model.recommend([0, 1], data[[0, 1, 2]], N=5)
        with pytest.raises(ValueError, match="itemid"):
            model.similar_items(self.n)
        with pytest.raises(ValueError, match="filter_items"):
            model.recommend(0, data[0], filter_items=[self.n])

    def test_unfitted_model_says_so(self):
        with pytest.raises(fastals.NotFittedError):
            self.make_model().recommend(0, checkerboard(4)[0])

    def test_input_not_modified(self):
        coo = sp.coo_matrix(([3, 1, 2, 0], ([0, 0, 1, 2], [1, 1, 2, 0])), shape=(4, 5))
        before = (coo.data.copy(), coo.row.copy(), coo.col.copy())
        csr = checkerboard(self.n)
        csr_before = (csr.data.copy(), csr.indices.copy(), csr.indptr.copy())
        self.make_model().fit(coo, show_progress=False)
        self.make_model().fit(csr, show_progress=False)
        for a, b in zip(before, (coo.data, coo.row, coo.col)):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(csr_before, (csr.data, csr.indices, csr.indptr)):
            np.testing.assert_array_equal(a, b)
