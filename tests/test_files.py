"""Model files: atomic writes, what a file holds (format version, parameters, no pickle), and
loads of damaged files (bytes flipped all over a file, truncations at every point) that
fail cleanly.

The single bad files (truncated, corrupted, wrong version, wrong model, not a zip, not
fastals, a pickle inside) are rows of the bad-input table (test_bad_input.py); here are the
properties of saving and the exhaustive damage sweeps.
"""
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals.data import IdRecommender, from_arrays
from fastals.exceptions import ModelFileError
from fastals.models.base import FORMAT_VERSION
from conftest import random_interactions

R = random_interactions(15, 12, 0.3, seed=21)


def _fitted_models():
    ratings = R.copy()
    return [
        fastals.ImplicitALS(factors=3, iterations=2, random_state=0),
        fastals.ExplicitALS(factors=3, iterations=2, random_state=0, regularization=(0.1, 0.2)),
        fastals.SGDMatrixFactorization(factors=3, epochs=2, random_state=0, lr_decay=[1.0, 0.5]),
        fastals.ItemKNN(K=3, similarity="bm25"),
        fastals.UserKNN(K=3, similarity="pearson"),
        fastals.ContentKNN(K=3),
        fastals.PopularityBaseline(),
    ], ratings


MODELS, RATINGS = _fitted_models()
for _model in MODELS:
    _model.fit(R.T.toarray() if isinstance(_model, fastals.ContentKNN) else R,
               show_progress=False)


def _leftovers(folder):
    return [name for name in os.listdir(folder) if name.startswith(".fastals-")]


def _state_equal(a, b):
    assert type(a) is type(b)
    assert a.get_params() == b.get_params()
    for name in a._state_names:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_a_file_holds_the_format_version_the_parameters_and_no_pickle(model, tmp_path):
    path = model.save(tmp_path / "model")
    with zipfile.ZipFile(path) as z:
        assert all(name.endswith(".npy") for name in z.namelist())
    with np.load(path, allow_pickle=False) as npz:  # every member loads without pickle
        arrays = {name: npz[name] for name in npz.files}
    assert all(a.dtype != object for a in arrays.values())
    header = json.loads(str(arrays["__fastals__"]))
    assert header["format"] == FORMAT_VERSION
    assert header["class"] == f"{type(model).__module__}.{type(model).__qualname__}"
    assert header["params"] == json.loads(json.dumps(model.get_params(), default=str)) or \
        type(model).load(path).get_params() == model.get_params()
    assert set(model._state_names) <= set(arrays)
    _state_equal(model, fastals.load(path))


def test_save_and_load_never_use_pickle(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("dump", "dumps", "load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    for model in MODELS:
        path = model.save(tmp_path / type(model).__name__)
        _state_equal(model, fastals.load(path))


def test_save_writes_a_temporary_file_beside_the_target_and_renames_it(tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace

    def replace(src, dst):
        renames.append((os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "model.npz"
    MODELS[0].save(target)
    (src, dst), = [r for r in renames if r[1] == str(target)]
    assert os.path.dirname(src) == str(tmp_path) and src != dst
    assert _leftovers(tmp_path) == []


def test_saved_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = MODELS[0].save(tmp_path / "model.npz")
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("failure", [OSError("No space left on device"), KeyboardInterrupt()],
                         ids=["disk full", "Ctrl-C"])
def test_a_failure_mid_save_leaves_the_old_file_intact(tmp_path, monkeypatch, failure):
    path = tmp_path / "model.npz"
    MODELS[0].save(path)
    old = path.read_bytes()
    real_write = np.lib.format.write_array
    calls = []

    def write_then_fail(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the header and one array are written, then the disk "fills"
            fp.write(b"\0" * 100)
            raise failure
        return real_write(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    other = fastals.ImplicitALS(factors=5, iterations=1, random_state=1).fit(
        R, show_progress=False)
    with pytest.raises(type(failure)):
        other.save(path)
    assert path.read_bytes() == old
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    _state_equal(MODELS[0], fastals.load(path))


def test_a_failure_while_adding_the_ids_leaves_the_old_file_intact(tmp_path, monkeypatch):
    users = np.repeat([f"u{k}" for k in range(R.shape[0])], np.diff(R.indptr))
    data = from_arrays(users, np.array([f"i{k}" for k in range(R.shape[1])])[R.indices], R.data)
    rec = IdRecommender(fastals.ImplicitALS(factors=3, iterations=1, random_state=0)).fit(
        data, show_progress=False)
    path = tmp_path / "rec.npz"
    rec.save(path)
    old = path.read_bytes()
    real_write = np.lib.format.write_array
    calls = []

    def fail_on_ids(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # the model's header and two arrays are written: then the ids
            raise OSError("No space left on device")
        return real_write(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", fail_on_ids)
    with pytest.raises(OSError):
        rec.save(path)
    assert path.read_bytes() == old
    assert _leftovers(tmp_path) == []


def _load_outcome(path, reference, loader=fastals.load):
    """'error' for a clean ModelFileError, 'same' for a load equal to the reference; any
    other exception (or a different model) fails the test."""
    try:
        loaded = loader(path)
    except ModelFileError as exc:
        assert str(path) in str(exc)
        return "error"
    model = getattr(loaded, "model", loaded)
    _state_equal(reference, model)
    return "same"


@pytest.mark.parametrize("model", [MODELS[0], MODELS[3]], ids=lambda m: type(m).__name__)
def test_every_truncation_fails_cleanly(model, tmp_path):
    raw = open(model.save(tmp_path / "good"), "rb").read()
    path = tmp_path / "cut.npz"
    outcomes = set()
    for length in list(range(0, len(raw), max(1, len(raw) // 150))) + [len(raw) - 1]:
        path.write_bytes(raw[:length])
        outcomes.add(_load_outcome(path, model))
    assert outcomes == {"error"}


@pytest.mark.parametrize("model", [MODELS[0], MODELS[3]], ids=lambda m: type(m).__name__)
def test_every_flipped_byte_fails_cleanly_or_loads_the_same_model(model, tmp_path):
    """Flip bytes spread evenly over the file (zip metadata, npy headers, arrays) in turn:
    the load fails with ModelFileError, or -- when the byte is one nothing checks, like a
    timestamp -- gives back exactly the saved model. Never another exception, a crash or a
    silently different model (zip CRCs cover the array bytes)."""
    raw = open(model.save(tmp_path / "good"), "rb").read()
    path = tmp_path / "flipped.npz"
    outcomes = {"error": 0, "same": 0}
    step = max(1, len(raw) // 400)
    for position in range(0, len(raw), step):
        damaged = bytearray(raw)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        outcomes[_load_outcome(path, model)] += 1
    assert outcomes["error"] > 0.5 * sum(outcomes.values())


def test_id_recommender_files_fail_cleanly_when_damaged(tmp_path):
    users = np.repeat([f"u{k}" for k in range(R.shape[0])], np.diff(R.indptr))
    data = from_arrays(users, np.array([f"i{k}" for k in range(R.shape[1])])[R.indices], R.data)
    rec = IdRecommender(fastals.ImplicitALS(factors=3, iterations=1, random_state=0)).fit(
        data, show_progress=False)
    raw = open(rec.save(tmp_path / "good"), "rb").read()
    path = tmp_path / "flipped.npz"
    for position in range(0, len(raw), max(1, len(raw) // 200)):
        damaged = bytearray(raw)
        damaged[position] ^= 0x5A
        path.write_bytes(bytes(damaged))
        _load_outcome(path, rec.model, loader=IdRecommender.load)


def test_load_does_not_import_or_construct_classes_named_by_the_file(tmp_path):
    """The class is looked up among fastals' registered models; a file naming anything else
    (a module to import, a builtin) is refused before any constructor runs."""
    good = MODELS[0].save(tmp_path / "good")
    with np.load(good) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(str(arrays["__fastals__"]))
    for name in ("builtins.eval", "subprocess.Popen", "fastals_evil_module.Model",
                 "fastals.models.base.RecommenderBase", ["fastals.ImplicitALS"]):
        arrays["__fastals__"] = np.array(json.dumps(dict(header, **{"class": name})))
        path = tmp_path / "named.npz"
        np.savez(path, **arrays)
        with pytest.raises(ModelFileError, match="model"):
            fastals.load(path)
    assert "fastals_evil_module" not in __import__("sys").modules


def test_a_model_saved_over_an_id_recommender_file_is_still_a_model(tmp_path):
    """Saving replaces the whole file (no stale ids appended to a fresh model)."""
    users = np.repeat([f"u{k}" for k in range(R.shape[0])], np.diff(R.indptr))
    data = from_arrays(users, np.array([f"i{k}" for k in range(R.shape[1])])[R.indices], R.data)
    rec = IdRecommender(fastals.ImplicitALS(factors=3, iterations=1, random_state=0)).fit(
        data, show_progress=False)
    path = rec.save(tmp_path / "model")
    MODELS[0].save(path)
    assert IdRecommender.load(path).users.kind == "int"  # plain model: ids 0..n-1
    _state_equal(MODELS[0], fastals.load(path))


def test_sparse_state_is_validated_on_load(tmp_path):
    """A KNN file whose CSR arrays were edited to point out of bounds is refused."""
    path = MODELS[3].save(tmp_path / "knn")
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["similarity_indices"] = arrays["similarity_indices"] + 1000
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError, match="out of bounds"):
        fastals.load(tmp_path / "bad.npz")
    arrays["similarity_indices"] = arrays["similarity_indices"] - 1000
    arrays["similarity_indptr"] = arrays["similarity_indptr"][::-1].copy()
    np.savez(tmp_path / "bad2.npz", **arrays)
    with pytest.raises(ModelFileError, match="similarity is not a valid sparse matrix"):
        fastals.load(tmp_path / "bad2.npz")
    assert sp.issparse(fastals.load(path).similarity_matrix)
