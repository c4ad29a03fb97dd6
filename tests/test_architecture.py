"""The rooms of the package: names stay importable where they were, and old files load."""
import json

import numpy as np
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
