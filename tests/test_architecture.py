"""The rooms of the package: reading data loads no kernel, names stay importable where they
were, and old files load."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals.models.popularity import PopularityBaseline

R = sp.csr_matrix(np.array([[1.0, 0, 2, 0], [0, 3, 0, 1], [4, 0, 0, 1]]))


def test_moved_names_stay_importable_where_they_were():
    import fastals.data
    import fastals.evaluation
    import fastals.id_recommender

    assert fastals.data.IdRecommender is fastals.id_recommender.IdRecommender
    assert fastals.data.score_pairs is fastals.id_recommender.score_pairs
    assert fastals.IdRecommender is fastals.id_recommender.IdRecommender
    assert fastals.evaluation.PopularityBaseline is PopularityBaseline
    assert fastals.PopularityBaseline is PopularityBaseline
    assert {"IdRecommender", "score_pairs"} <= set(dir(fastals.data))


def _rename_class(path, old_key):
    """Rewrite a saved file as an earlier version wrote it: the class under its old name."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(str(arrays["__fastals__"]))
    arrays["__fastals__"] = np.array(json.dumps(dict(header, **{"class": old_key})))
    np.savez(path, **arrays)


def test_a_popularity_baseline_saved_in_its_old_home_still_loads(tmp_path):
    model = PopularityBaseline().fit(R, show_progress=False)
    path = model.save(tmp_path / "popular")
    _rename_class(path, "fastals.evaluation.PopularityBaseline")
    for loaded in (fastals.load(path), PopularityBaseline.load(path),
                   fastals.IdRecommender.load(path).model):
        assert type(loaded) is PopularityBaseline
        np.testing.assert_array_equal(loaded.item_popularity, model.item_popularity)
        assert loaded.recommend(0, R, N=2)[0].tolist() == model.recommend(0, R, N=2)[0].tolist()


# --- what a fresh interpreter loads --------------------------------------------------------
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastals.__file__)))


def _loaded_after(code, tmp_path):
    """The fastals modules a fresh interpreter has loaded after running `code`."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        import sys
        print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] == "fastals")))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    assert "fastals" in loaded and all(m.startswith("fastals") for m in loaded)
    return loaded


def _kernels_and_models(loaded):
    """The kernel modules (compiled or not) and the models among the loaded modules."""
    return [m for m in loaded if m.startswith(("fastals._kernels", "fastals.models"))]


@pytest.mark.parametrize("code", [
    """
    import fastals.data
    data = fastals.data.read_csv("plays.csv")
    assert data.shape == (2, 2)
    """,
    """
    import fastals.data
    data = fastals.data.from_arrays(["ann", "bob"], ["jazz", "rock"], [3, 1])
    data = fastals.data.linear_weight(data, 2.0)
    assert data.users.index("bob") == 1
    """,
    """
    import fastals.datasets
    data = fastals.datasets.make_synthetic(n_users=20, n_items=40, interactions_per_user=5, random_state=0)
    assert data.n_users == 20
    """,
    """
    import fastals
    assert fastals.__version__ and "ImplicitALS" in dir(fastals)
    """,
], ids=["read_csv", "from_arrays", "datasets", "import fastals"])
def test_reading_data_loads_no_compiled_kernel(code, tmp_path):
    (tmp_path / "plays.csv").write_text("user,item,plays\nann,jazz,3\nbob,rock,1\n")
    loaded = _loaded_after(code, tmp_path)
    assert not _kernels_and_models(loaded), f"reading data loaded {_kernels_and_models(loaded)}"


def test_the_kernels_load_when_a_model_is_used(tmp_path):
    """The check above can fail: what imports the models does load the kernels."""
    loaded = _loaded_after("""
        import fastals.data
        assert fastals.data.IdRecommender.__name__ == "IdRecommender"
        weights = fastals.data.bm25_weight(fastals.data.from_arrays([1, 2], [3, 3]).user_items)
    """, tmp_path)
    assert "fastals.models.base" in loaded and "fastals._kernels._similarity" in loaded


def test_every_public_name_loads_on_first_use(tmp_path):
    loaded = _loaded_after("""
        import fastals
        from fastals import *
        names = {n: getattr(fastals, n) for n in fastals.__all__}
        assert all(names[n] is globals()[n] for n in fastals.__all__)
        for module in ("data", "datasets", "evaluation", "models", "similarity", "exceptions"):
            assert getattr(fastals, module).__name__ == "fastals." + module
        import scipy.sparse as sp
        fastals.PopularityBaseline().fit(sp.eye(3, format="csr"), show_progress=False).save("p")
    """, tmp_path)
    assert "fastals.models.sgd" in loaded
    # a fresh interpreter that loads a file registers fastals' models by itself
    _loaded_after("""
        import fastals
        assert type(fastals.load("p.npz")).__name__ == "PopularityBaseline"
        from fastals.models.base import load
        assert type(load("p.npz")).__name__ == "PopularityBaseline"
    """, tmp_path)


def test_a_public_name_deleted_from_the_package_stays_deleted():
    """As it did when the package imported every name eagerly (the CLI relies on it)."""
    value = fastals.ExplicitALS
    try:
        del fastals.ExplicitALS
        assert not hasattr(fastals, "ExplicitALS")
    finally:
        fastals.ExplicitALS = value
    assert fastals.ExplicitALS is value
