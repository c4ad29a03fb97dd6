"""fastals.datasets: loaders on small fixture files in each format, on MovieLens 100K, and
the synthetic generator."""
import numpy as np
import pytest

from fastals import datasets
from fastals.data import DataWarning


def _write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


# --- fixture files ---------------------------------------------------------------------------
@pytest.fixture
def ml100k_folder(tmp_path):
    folder = tmp_path / "ml-100k"
    _write(folder / "u.data", "1\t10\t4\t881250949\n2\t10\t5\t881250950\n1\t20\t1\t881250951\n"
                              "3\t30\t3\t881250952\n")
    genre = "unknown|0\nAction|1\nComedy|2\n\n"
    _write(folder / "u.genre", genre)
    _write(folder / "u.item", "10|Amélie (2001)|01-01-2001||http://x|0|0|1\n"
                              "20|Heat (1995)|01-01-1995||http://y|0|1|0\n"
                              "30|Toy Story (1995)|01-01-1995||http://z|0|1|1\n", "latin-1")
    return tmp_path  # the parent: the loader finds ml-100k inside


@pytest.fixture
def ml_latest_folder(tmp_path):
    folder = tmp_path / "ml-latest-small"
    _write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
                                   "1,3,4.5,964981247\n2,1,0.5,964982224\n2,50,5.0,964982931\n")
    _write(folder / "movies.csv", 'movieId,title,genres\n1,Toy Story (1995),Adventure|Comedy\n'
                                  '3,"American President, The (1995)",Comedy|Drama|Romance\n'
                                  '50,"Usual Suspects, The (1995)",Crime|Mystery\n')
    return folder


def test_movielens_100k_format(ml100k_folder):
    data = datasets.load_movielens(ml100k_folder)
    assert data.users.ids.tolist() == [1, 2, 3] and data.items.ids.tolist() == [10, 20, 30]
    assert data.user_items.toarray().tolist() == [[4, 1, 0], [5, 0, 0], [0, 0, 3]]
    assert data.item_info["title"].tolist() == ["Amélie (2001)", "Heat (1995)",
                                                "Toy Story (1995)"]
    assert data.item_info["genres"].tolist() == ["Comedy", "Action", "Action|Comedy"]
    assert sorted(data.timestamps.tolist()) == [881250949, 881250950, 881250951, 881250952]
    assert datasets.load("movielens-100k", ml100k_folder / "ml-100k" / "u.data").nnz == 4


def test_movielens_latest_format(ml_latest_folder):
    data = datasets.load_movielens(ml_latest_folder)
    assert data.shape == (2, 3) and data.items.ids.tolist() == [1, 3, 50]
    assert data.user_items.toarray().tolist() == [[4.0, 4.5, 0], [0.5, 0, 5.0]]
    assert data.item_info["title"][1] == "American President, The (1995)"
    assert data.item_info["genres"][2] == "Crime|Mystery"
    assert data.item_labels([2]).tolist() == ["Usual Suspects, The (1995)"]
    assert datasets.load("movielens-25m", ml_latest_folder.parent).nnz == 4


def test_lastfm_360k_format(tmp_path):
    folder = tmp_path / "lastfm-dataset-360K"
    sha = ["00000c289a1829a808ac09c00daf10bc3c4e223b", "00001411dc427966b17297bf4d69e7e193135d89"]
    _write(folder / "usersha1-artmbid-artname-plays.tsv",
           f"{sha[0]}\t3bd73256-3905-4f3a-97e2-8b341527f805\tbetty blowtorch\t2137\n"
           f"{sha[0]}\tf2fb0ff0-5679-42ec-a55c-15109ce6e320\tdie Ärzte\t1099\n"
           f"{sha[0]}\t\t\"weird al\" yankovic\t5\n"
           f"{sha[1]}\t3bd73256-3905-4f3a-97e2-8b341527f805\tbetty blowtorch\t10\n"
           f"{sha[1]}\t\tbetty blowtorch\t1\n"
           f"{sha[1]}\t\t\t7\n")
    with pytest.warns(DataWarning, match="dropped 1 of 6 records.*line 6"):
        data = datasets.load_lastfm_360k(tmp_path)
    assert data.users.ids.tolist() == sha
    assert sorted(data.items.ids.tolist()) == ['"weird al" yankovic', "betty blowtorch",
                                               "die Ärzte"]
    user1 = data.users.index(sha[1])
    assert data.user_items[user1, data.items.index("betty blowtorch")] == 11  # summed


def test_lastfm_hetrec_format(tmp_path):
    folder = tmp_path / "hetrec2011-lastfm-2k"
    _write(folder / "user_artists.dat", "userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n"
                                        "3\t51\t228\n")
    _write(folder / "artists.dat", "id\tname\turl\tpictureURL\n"
                                   "51\tDuran Duran\thttp://a\thttp://b\n"
                                   "52\tMorcheeba\thttp://c\thttp://d\n"
                                   "53\tAir\thttp://e\thttp://f\n")
    data = datasets.load_lastfm_hetrec(tmp_path)
    assert data.users.ids.tolist() == [2, 3] and data.items.ids.tolist() == [51, 52]
    assert data.user_items.toarray().tolist() == [[13883, 11690], [228, 0]]
    assert data.item_info["name"].tolist() == ["Duran Duran", "Morcheeba"]
    assert datasets.load("lastfm-2k", folder).nnz == 3


def test_loader_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        datasets.load_movielens(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="holds no ratings.csv"):
        datasets.load_movielens(tmp_path)
    with pytest.raises(FileNotFoundError, match="holds no usersha1"):
        datasets.load_lastfm_360k(tmp_path)
    with pytest.raises(ValueError, match="name must be one of"):
        datasets.load("netflix", tmp_path)
    bad = _write(tmp_path / "ml" / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,x,3\n")
    with pytest.raises(ValueError, match=r"ratings\.csv, line 2, column 'rating'"):
        datasets.load_movielens(bad.parent)


def test_data_home_from_the_environment(tmp_path, monkeypatch, ml_latest_folder):
    monkeypatch.setenv("FASTALS_DATA", str(ml_latest_folder.parent))
    assert datasets.load_movielens().nnz == 4
    monkeypatch.delenv("FASTALS_DATA")
    with pytest.raises(FileNotFoundError, match="FASTALS_DATA"):
        datasets.load_movielens()


# --- MovieLens 100K itself -----------------------------------------------------------------
def test_real_movielens_100k(ml100k_path):
    data = datasets.load_movielens(ml100k_path)
    assert data.shape == (943, 1682) and data.nnz == 100_000
    assert data.item_info["title"][data.items.index(50)] == "Star Wars (1977)"
    assert set(np.unique(data.user_items.data)) == {1, 2, 3, 4, 5}
    ratings, titles = datasets.load_movielens_100k(ml100k_path)  # the matrix-only reader
    assert (ratings != data.user_items).nnz == 0
    assert data.timestamps is not None and data.timestamps.min() > 8e8


# --- make_synthetic ------------------------------------------------------------------------------
def test_synthetic_is_deterministic_and_named():
    a = datasets.make_synthetic(n_users=300, n_items=120, n_groups=4, random_state=3)
    b = datasets.make_synthetic(n_users=300, n_items=120, n_groups=4, random_state=3)
    c = datasets.make_synthetic(n_users=300, n_items=120, n_groups=4, random_state=4)
    assert (a.user_items != b.user_items).nnz == 0 and a.items == b.items
    assert np.array_equal(a.timestamps, b.timestamps)
    assert (a.user_items != c.user_items).nnz > 0
    assert a.shape == (300, 120)
    assert a.users.ids[0] == "user-001"
    groups = set(a.item_info["group"].tolist())
    assert groups == {"jazz", "rock", "hip-hop", "classical"}
    assert all(item.split("-")[0] in ("jazz", "rock", "hip", "classical")
               for item in a.items.ids.tolist())


def test_synthetic_has_planted_taste_and_power_law_popularity():
    data = datasets.make_synthetic(n_users=1000, n_items=400, n_groups=8, random_state=0)
    groups = data.item_info["group"]
    favourite = data.user_info["favourite_group"]
    m = data.user_items.tocsr()
    share = [np.mean(groups[m[u].indices] == favourite[u]) for u in range(m.shape[0])]
    assert np.mean(share) > 0.35  # about 0.48 here: far above the 1/8 of a taste-free draw
    counts = np.bincount(m.indices, minlength=data.n_items)
    assert counts.max() > 5 * np.median(counts)  # a popular head and a long tail (8x here)
    # the counts follow the planted popularity: rank correlation well above 0
    ranks = np.argsort(np.argsort(counts)), np.argsort(np.argsort(data.item_info["popularity"]))
    assert np.corrcoef(*ranks)[0, 1] > 0.5
    assert (m.data >= 1).all()


def test_synthetic_explicit_ratings():
    data = datasets.make_synthetic(n_users=200, n_items=100, kind="explicit", random_state=0)
    values = data.user_items.data
    assert set(np.unique(values)) <= {1, 2, 3, 4, 5} and len(np.unique(values)) >= 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_users=0), "n_users must be a positive int"),
    (dict(n_groups=500, n_items=100), "n_groups must be an int <= 100"),
    (dict(kind="ratings"), "kind must be one of"),
    (dict(noise=2.0), "noise must be <= 1"),
    (dict(taste_concentration=0), "taste_concentration must be > 0"),
])
def test_synthetic_validates_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        datasets.make_synthetic(**kwargs)
