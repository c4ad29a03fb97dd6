"""fastals.data: ids, building the matrix from records, CSV reading, weighting, IdRecommender."""
import gzip
import io
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals import data as fdata
from fastals.data import (
    DataWarning,
    IdMapping,
    IdRecommender,
    Interactions,
    bm25_weight,
    from_arrays,
    linear_weight,
    log_weight,
    read_csv,
    score_pairs,
    tfidf_weight,
)
from fastals.evaluation import PopularityBaseline

pd = pytest.importorskip("pandas")


# --- IdMapping -----------------------------------------------------------------------------
def test_mapping_round_trip_and_unknown_ids():
    m = IdMapping(["ann", "bob", "cat"], name="user")
    assert m.index("bob") == 1
    assert m.index(["cat", "ann"]).tolist() == [2, 0]
    assert m.to_ids([2, 0]).tolist() == ["cat", "ann"]
    assert m.to_ids(1) == "bob"
    assert "ann" in m and "zed" not in m
    with pytest.raises(fastals.IdOutOfRangeError, match="user 'zed' is not known"):
        m.index("zed")
    with pytest.raises(fastals.IdOutOfRangeError, match="2 unknown user ids"):
        m.index(["zed", "ann", "yan"])
    assert m.index(["zed", "ann"], missing="ignore").tolist() == [-1, 0]


def test_mapping_int_ids_accept_text_and_text_ids_accept_ints():
    ints = IdMapping(np.array([196, 7, 1000]), name="user")
    assert ints.kind == "int"
    assert ints.index("196") == 0 and ints.index(np.int32(7)) == 1 and ints.index(1000.0) == 2
    assert ints.index(["7", 196]).tolist() == [1, 0]
    with pytest.raises(fastals.IdOutOfRangeError):
        ints.index(True)  # a bool is not the id 1
    texts = IdMapping(["10", "0042"], name="item")
    assert texts.index(10) == 0 and texts.index("0042") == 1
    with pytest.raises(fastals.IdOutOfRangeError):
        texts.index(42)  # "0042" is text, not the number 42


def test_mapping_keeps_int_and_text_ids_apart_and_large_lookups():
    mixed = IdMapping([1, "1", ("a", 2)])
    assert mixed.index(1) == 0 and mixed.index("1") == 1 and mixed.index(("a", 2)) == 2
    names = [f"artist {k}" for k in range(5000)]
    big = IdMapping(names)
    queries = names[::-1] + ["nobody"]
    out = big.index(queries, missing="ignore")
    assert out[:-1].tolist() == list(range(4999, -1, -1)) and out[-1] == -1


@pytest.mark.parametrize("ids, message", [
    (["a", "b", "a"], "not unique: 'a'"),
    ([3, 1, 3], "not unique: 3"),
    (["a", None], "missing"),
    ([["unhashable"], ["list"]], "hashable"),
])
def test_mapping_rejects_bad_ids(ids, message):
    with pytest.raises((ValueError, TypeError), match=message):
        IdMapping(ids)


def test_mapping_never_freezes_or_shares_the_callers_array():
    ids = np.array([5, 3, 9])
    m = IdMapping(ids)
    ids[0] = 100  # still writable, and the mapping is unaffected
    assert m.ids.tolist() == [5, 3, 9]
    with pytest.raises(ValueError):
        m.ids[0] = 1


def test_mapping_extend():
    m = IdMapping(["a", "b"]).extend(["c", "a", "c", "d"])
    assert m.ids.tolist() == ["a", "b", "c", "d"]


# --- building from records -------------------------------------------------------------------
@pytest.mark.parametrize("policy, expected", [
    ("sum", 6.0), ("mean", 2.0), ("max", 4.0), ("min", 1.0), ("first", 1.0), ("last", 4.0),
])
def test_duplicate_policies(policy, expected):
    data = from_arrays(["u", "u", "v", "u"], ["i", "i", "i", "i"], [1, 1, 5, 4],
                       duplicates=policy)
    matrix = data.user_items.toarray()
    assert matrix[data.users.index("u"), data.items.index("i")] == expected
    assert matrix[data.users.index("v"), data.items.index("i")] == 5


def test_duplicates_error_names_the_pair_and_the_record():
    with pytest.raises(ValueError, match=r"\('u', 'i'\) at position 2"):
        from_arrays(["u", "v", "u"], ["i", "i", "i"], duplicates="error")


def test_duplicate_timestamps_keep_the_latest():
    data = from_arrays(["u", "u", "u"], ["i", "i", "j"], [1, 2, 3], timestamps=[10, 30, 20])
    assert data.user_items.toarray().tolist() == [[3.0, 3.0]]
    assert data.timestamps.tolist() == [30.0, 20.0]


def test_missing_ids_and_values_are_dropped_and_counted():
    with pytest.warns(DataWarning, match=r"dropped 3 of 6 records: 3 with a missing user, item or "
                                         r"value \(first at position 1\)"):
        data = from_arrays(["a", None, "b", "c", "d", "e"],
                           ["x", "y", np.nan, "z", "x", "y"], [1, 2, 3, np.nan, 5, 6])
    assert data.nnz == 3 and sorted(data.users.ids.tolist()) == ["a", "d", "e"]


def test_records_unknown_to_a_given_mapping_are_dropped():
    train = from_arrays(["a", "b"], ["x", "y"])
    with pytest.warns(DataWarning, match="1 with ids not in the given mapping"):
        test = from_arrays(["a", "b", "new"], ["y", "x", "x"], user_ids=train.users,
                           item_ids=train.items)
    assert test.users is train.users and test.shape == train.shape
    assert test.user_items.toarray().tolist() == [[0, 1], [1, 0]]


def test_string_and_integer_ids_are_sorted_and_values_kept():
    data = from_arrays([30, 10, 20, 10], [5, 7, 5, 5], [1.0, 2.0, 3.0, 0.0])
    assert data.users.ids.tolist() == [10, 20, 30] and data.items.ids.tolist() == [5, 7]
    # a stored zero stays stored (an explicit rating of 0 is a rating)
    assert data.nnz == 4 and data.user_items.toarray().tolist() == [[0, 2], [3, 0], [1, 0]]


def test_from_arrays_input_is_not_modified_and_errors_are_clear():
    users = np.array(["a", "b"], dtype=object)
    values = np.array([1.0, 2.0])
    from_arrays(users, ["x", "y"], values)
    assert users.tolist() == ["a", "b"] and values.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="same length"):
        from_arrays(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="finite"):
        from_arrays(["a"], ["x"], [np.inf])
    with pytest.raises(ValueError, match=r"must be numbers, got 'lots' at position 1"):
        from_arrays(["a", "b"], ["x", "y"], ["1", "lots"])
    with pytest.raises(ValueError, match="no interactions"):
        with pytest.warns(DataWarning):
            from_arrays([None], ["x"])
    with pytest.raises(ValueError, match="duplicates must be one of"):
        from_arrays(["a"], ["x"], duplicates="average")


def test_interactions_from_a_matrix_and_shape_checks():
    m = sp.random(5, 4, density=0.5, format="coo", random_state=0)
    data = Interactions(m)
    assert data.users.ids.tolist() == list(range(5)) and data.shape == (5, 4)
    with pytest.raises(ValueError, match="3 ids but the matrix has 5 rows"):
        Interactions(m, users=IdMapping(["a", "b", "c"]))
    with pytest.raises(ValueError, match="timestamps"):
        Interactions(m, timestamps=np.zeros(2))


# --- DataFrames ---------------------------------------------------------------------------------
def _frame():
    return pd.DataFrame({
        "user": ["ann", "ann", "bob", "bob", "cat", "cat"],
        "artist": ["Jay-Z", "Nas", "Jay-Z", "Miles", "Miles", "Coltrane"],
        "plays": [10, 3, 4, 1, 7, 8],
    })


def test_from_dataframe_with_metadata():
    meta = pd.DataFrame({"artist": ["Jay-Z", "Nas", "Miles", "Other"],
                         "genre": ["hip-hop", "hip-hop", "jazz", "pop"]})
    data = fdata.from_dataframe(_frame(), "user", "artist", "plays", item_metadata=meta,
                                item_key="artist")
    assert data.shape == (3, 4)
    genre = dict(zip(data.items.ids, data.item_info["genre"]))
    assert genre == {"Coltrane": None, "Jay-Z": "hip-hop", "Miles": "jazz", "Nas": "hip-hop"}
    frame = data.to_dataframe()
    assert frame["value"].sum() == 33


def test_from_dataframe_names_a_missing_column_and_a_bad_row():
    with pytest.raises(ValueError, match="value_col='rating' is not a column"):
        fdata.from_dataframe(_frame(), "user", "artist", "rating")
    frame = _frame()
    frame["plays"] = frame["plays"].astype(object)
    frame.loc[3, "plays"] = "many"
    with pytest.raises(ValueError, match="row 3 of the DataFrame"):
        fdata.from_dataframe(frame, "user", "artist", "plays")


def test_from_dataframe_nullable_and_categorical_columns():
    frame = pd.DataFrame({"u": pd.array([1, 2, None], dtype="Int64"),
                          "i": pd.Categorical(["x", "y", "x"]),
                          "v": pd.array([1.5, None, 2.0], dtype="Float64")})
    with pytest.warns(DataWarning, match="dropped 2 of 3"):
        data = fdata.from_dataframe(frame, "u", "i", "v")
    assert data.users.ids.tolist() == [1] and data.user_items.toarray().tolist() == [[1.5]]


# --- CSV / TSV -----------------------------------------------------------------------------------
def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture(params=["pandas", "csv module"])
def reader(request, monkeypatch):
    """Run each CSV test with pandas and with the standard-library fallback."""
    if request.param == "csv module":
        monkeypatch.setattr(fdata, "_pandas", lambda: None)
    return request.param


def test_read_csv_header_names_and_int_ids(tmp_path, reader):
    path = _write(tmp_path / "r.csv", "userId,movieId,rating,timestamp\n196,242,3,881250949\n"
                                      "186,302,3.5,891717742\n196,302,1,878887116\n")
    data = read_csv(path)
    assert data.users.kind == "int" and data.users.ids.tolist() == [186, 196]
    assert data.items.ids.tolist() == [242, 302]
    assert data.user_items.toarray().tolist() == [[0, 3.5], [3, 1]]
    assert sorted(data.timestamps.tolist()) == [878887116, 881250949, 891717742]


def test_read_csv_positions_tsv_without_header(tmp_path, reader):
    path = _write(tmp_path / "u.data", "1\t10\t5\t100\n2\t10\t4\t200\n1\t20\t1\t300\n")
    data = read_csv(path, 0, 1, 2, 3, sep="\t", header=False)
    assert data.shape == (2, 2) and data.user_items.sum() == 10


def test_read_csv_keeps_non_canonical_ids_as_text(tmp_path, reader):
    path = _write(tmp_path / "z.csv", "user,item\n007,a\n10,b\n")
    data = read_csv(path)
    assert data.users.ids.tolist() == ["007", "10"]
    assert data.user_items.toarray().tolist() == [[1, 0], [0, 1]]  # no value column: 1 each


def test_read_csv_quoting_encodings_and_compression(tmp_path, reader):
    text = 'user;artist;plays\nann;"Earth, Wind & Fire";3\nbob;Björk;2\n'
    data = read_csv(_write(tmp_path / "a.txt", text, "latin-1"), encoding="latin-1")
    assert sorted(data.items.ids.tolist()) == ["Björk", "Earth, Wind & Fire"]
    gz = tmp_path / "a.csv.gz"
    gz.write_bytes(gzip.compress(text.replace(";", ",").replace('"Earth, Wind & Fire"',
                                                                '"Earth; Wind"').encode()))
    data = read_csv(gz)
    assert sorted(data.items.ids.tolist()) == ["Björk", "Earth; Wind"]
    stray = _write(tmp_path / "s.tsv", 'u\ti\tv\na\tthe "band\t1\nb\tx\t2\n')
    data = read_csv(stray, "u", "i", "v", quoting=False)
    assert 'the "band' in data.items.ids.tolist()


def test_read_csv_blank_and_short_lines_are_missing_rows(tmp_path, reader):
    path = _write(tmp_path / "b.csv", "user,item,plays\na,x,1\n\nb,y,2\nc,z\nd,,4\n")
    with pytest.warns(DataWarning, match=r"dropped 3 of 5 records.*line 3"):
        data = read_csv(path)
    assert data.nnz == 2


@pytest.mark.parametrize("text, kwargs, message", [
    ("user,item,plays\na,x,1\nb,y,lots\n", {}, r"b\.csv, line 3, column 'plays': expected a "
                                               r"number, got 'lots'"),
    ("user,item,plays\na,x,1\n", {"value_col": "rating"},
     r"b\.csv: no value column 'rating' \(columns: user, item, plays\)"),
    ("who,what,plays\na,x,1\n", {}, r"cannot tell which column holds the user ids"),
    ("", {}, r"b\.csv is empty"),
    ("user,item,plays\n", {}, r"b\.csv has no data rows"),
    ("user,item,plays\na,x,1\nb,y,2,9\n", {}, r"b\.csv: expected 3 fields in line 3"),
    ("user,item,plays\na,x,inf\n", {}, r"finite.*line 2"),
])
def test_read_csv_errors_name_file_line_and_column(tmp_path, reader, text, kwargs, message):
    path = _write(tmp_path / "b.csv", text)
    with pytest.raises(ValueError, match=message):
        read_csv(path, **kwargs)


def test_read_csv_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_csv(tmp_path / "absent.csv")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        read_csv(tmp_path)
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"user,item\n\xff\xfe\x00a,b\n")
    with pytest.raises(ValueError, match="not utf-8"):
        read_csv(binary)


def test_read_csv_same_result_with_and_without_pandas(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    lines = ["user,item,plays"] + [f"u{rng.integers(50)},i{rng.integers(80)},{rng.integers(1, 9)}"
                                   for _ in range(3000)]
    path = _write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    with_pandas = read_csv(path)
    monkeypatch.setattr(fdata, "_pandas", lambda: None)
    without = read_csv(path)
    assert with_pandas.users == without.users and with_pandas.items == without.items
    assert (with_pandas.user_items != without.user_items).nnz == 0


# --- weighting ------------------------------------------------------------------------------
def _tiny():
    return sp.csr_matrix(np.array([[1.0, 0, 3], [0, 2, 0], [4, 0, 0], [1, 1, 0]]))


def test_linear_and_log_weights_by_hand():
    X = _tiny()
    before = X.toarray().copy()
    assert np.allclose(linear_weight(X, 40).toarray(), 40 * before)
    assert np.allclose(log_weight(X, alpha=2, epsilon=0.5).toarray(),
                       np.where(before > 0, 2 * np.log1p(before / 0.5), 0))
    assert np.array_equal(X.toarray(), before)  # input untouched
    with pytest.raises(ValueError, match="alpha must be > 0"):
        linear_weight(X, 0)


def test_linear_weight_equals_alpha_inside_implicit_als():
    X = _tiny()
    a = fastals.ImplicitALS(factors=2, alpha=1.0, iterations=3, solver="cholesky",
                            random_state=0, dtype=np.float64).fit(linear_weight(X, 7.0),
                                                                  show_progress=False)
    b = fastals.ImplicitALS(factors=2, alpha=7.0, iterations=3, solver="cholesky",
                            random_state=0, dtype=np.float64).fit(X, show_progress=False)
    assert np.allclose(a.user_factors, b.user_factors, atol=1e-10)


def test_bm25_and_tfidf_match_their_formulas():
    X = _tiny()
    dense = X.toarray()
    N = dense.shape[0]
    df = (dense != 0).sum(axis=0)
    idf = np.log(N) - np.log1p(df)
    lengths = dense.sum(axis=1)
    norm = (1 - 0.75) + 0.75 * lengths / lengths.mean()
    expected = np.where(dense != 0, dense * (10 + 1) / (10 * norm[:, None] + dense) * idf, 0)
    assert np.allclose(bm25_weight(X, K1=10, B=0.75).toarray(), expected)
    assert np.allclose(tfidf_weight(X).toarray(), np.where(dense != 0, np.sqrt(dense) * idf, 0))


def test_weighting_keeps_interactions_ids_and_warns_on_ubiquitous_columns():
    data = from_arrays(["a", "b", "c"], ["x", "x", "x"], [1, 2, 3])
    with pytest.warns(DataWarning, match="IDF is <= 0"):
        out = bm25_weight(data)
    assert isinstance(out, Interactions) and out.users is data.users
    with pytest.raises(ValueError, match="non-negative"):
        tfidf_weight(sp.csr_matrix(np.array([[-1.0, 2.0]])))
    with pytest.raises(TypeError, match="dense"):
        linear_weight(np.ones((2, 2)))


def test_weighting_a_matrix_without_rows_gives_an_empty_matrix_and_no_warning():
    for empty in (sp.csr_matrix((0, 4)), sp.csr_matrix((0, 0))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy's divide-by-zero in log(0) was one
            for weight in (bm25_weight, tfidf_weight):
                out = weight(empty)
                assert out.shape == empty.shape and out.nnz == 0


# --- IdRecommender ------------------------------------------------------------------------
def _genres():
    """Six users in two taste groups over string-named items; one item of each user held out."""
    jazz = ["Miles", "Coltrane", "Monk", "Mingus"]
    rock = ["Queen", "Zeppelin", "Floyd", "Rush"]
    rows = []
    for k, user in enumerate(["j1", "j2", "j3"]):
        rows += [(user, a, 5.0) for a in jazz if a != jazz[k]]
    for k, user in enumerate(["r1", "r2", "r3"]):
        rows += [(user, a, 5.0) for a in rock if a != rock[k]]
    frame = pd.DataFrame(rows, columns=["user", "artist", "plays"])
    meta = pd.DataFrame({"artist": jazz + rock, "title": [f"The {a}" for a in jazz + rock]})
    data = fdata.from_dataframe(frame, "user", "artist", "plays", item_metadata=meta,
                                item_key="artist")
    held_out = {"j1": "Miles", "j2": "Coltrane", "j3": "Monk", "r1": "Queen", "r2": "Zeppelin",
                "r3": "Floyd"}
    return data, held_out


def _fitted(data):
    model = fastals.ImplicitALS(factors=4, regularization=0.1, iterations=20, alpha=2.0,
                                solver="cholesky", random_state=0, dtype=np.float64)
    return IdRecommender(model).fit(data, show_progress=False)


def test_round_trip_with_string_ids():
    data, held_out = _genres()
    rec = _fitted(data)
    for user, item in held_out.items():
        ids, scores = rec.recommend(user, N=1)
        assert ids.tolist() == [item], user
    ids, scores = rec.recommend(list(held_out), N=2)
    assert ids.shape == (6, 2)
    for k, user in enumerate(held_out):
        single_ids, single_scores = rec.recommend(user, N=2)
        assert ids[k].tolist() == single_ids.tolist()
        assert np.allclose(scores[k], single_scores)
    # never recommends what the user already has
    ids, _ = rec.recommend("j1", N=10)
    assert set(ids.tolist()).isdisjoint({"Coltrane", "Monk", "Mingus"})
    similar, _ = rec.similar_items("Miles", N=4)
    assert similar[0] == "Miles"
    assert set(similar.tolist()) <= {"Miles", "Coltrane", "Monk", "Mingus"}
    with pytest.raises(fastals.IdOutOfRangeError, match="user 'nobody' is not known"):
        rec.recommend("nobody")
    with pytest.raises(fastals.IdOutOfRangeError, match="item 'Beatles' is not known"):
        rec.similar_items("Beatles")


def test_recommend_filters_and_frames():
    data, _ = _genres()
    rec = _fitted(data)
    ids, _ = rec.recommend("j1", N=3, filter_items=["Miles"])
    assert "Miles" not in ids.tolist()
    ids, _ = rec.recommend("j1", N=3, items=["Queen", "Rush"], filter_already_liked_items=False)
    assert set(ids.tolist()) == {"Queen", "Rush"}
    frame = rec.recommend(["j1", "r1"], N=2, as_frame=True)
    assert list(frame.columns[:4]) == ["user", "rank", "item", "score"]
    assert frame.loc[(frame.user == "j1") & (frame["rank"] == 1), "title"].item() == "The Miles"
    frame = rec.similar_items("Queen", N=3, as_frame=True)
    assert frame["query_item"].tolist() == ["Queen"] * 3 and "title" in frame.columns


def test_cold_start_user_from_history():
    data, _ = _genres()
    rec = _fitted(data)
    ids, _ = rec.recommend("newcomer", N=1, history=["Queen", "Zeppelin", "Floyd"])
    assert ids.tolist() == ["Rush"]
    ids, _ = rec.recommend("newcomer", N=1, history={"Miles": 5, "Coltrane": 5})
    assert ids[0] in {"Monk", "Mingus"}
    with pytest.raises(fastals.IdOutOfRangeError, match="item 'Beatles'"):
        rec.recommend("newcomer", history=["Beatles"])


def test_predict_matches_the_factors():
    data, _ = _genres()
    rec = _fitted(data)
    m = rec.model
    expected = m.user_factors[data.users.index("j1")] @ m.item_factors[data.items.index("Queen")]
    assert rec.predict("j1", "Queen") == pytest.approx(expected)
    pairs = rec.predict(["j1", "r2"], ["Queen", "Rush"])
    assert pairs.shape == (2,) and pairs[0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="same length"):
        rec.predict(["j1"], ["Queen", "Rush"])


def test_score_pairs_generic_path_uses_the_models_scores():
    m = sp.csr_matrix(np.array([[1.0, 0, 1], [0, 1, 1], [0, 0, 1]]))
    pop = PopularityBaseline().fit(m)
    scores = score_pairs(pop, [0, 1, 2], [2, 0, 1])
    assert np.allclose(scores, pop.item_popularity[[2, 0, 1]])


@pytest.mark.parametrize("ids", [
    [f"user {k}" for k in range(6)],
    [101, 7, 55, 3, 900, 12],
    [1, "1", 2, "b", 3, "c"],
])
def test_save_and_load_keep_ids_metadata_and_interactions(tmp_path, ids):
    data, _ = _genres()
    users = IdMapping(np.array(ids, dtype=object), name="user")
    data = Interactions(data.user_items, users, data.items, item_info=data.item_info)
    rec = _fitted(data)
    path = rec.save(tmp_path / "model")
    assert path.endswith(".npz")
    loaded = IdRecommender.load(path)
    assert loaded.users == rec.users and loaded.items == rec.items
    assert loaded.item_info["title"].tolist() == rec.item_info["title"].tolist()
    for user in ids:
        a, sa = rec.recommend(user, N=3)
        b, sb = loaded.recommend(user, N=3)
        assert a.tolist() == b.tolist() and np.allclose(sa, sb)
    bare = fastals.load(path)  # still a plain model file
    assert np.array_equal(bare.user_factors, rec.model.user_factors)


def test_save_and_load_with_a_file_object(tmp_path):
    data, _ = _genres()
    rec = _fitted(data)
    buffer = io.BytesIO(b"header")
    buffer.seek(0, io.SEEK_END)
    assert rec.save(buffer) is buffer and not buffer.closed
    buffer.seek(len(b"header"))
    loaded = IdRecommender.load(buffer)
    assert not buffer.closed
    assert loaded.users == rec.users and loaded.items == rec.items
    assert loaded.item_info["title"].tolist() == rec.item_info["title"].tolist()
    user = rec.users.ids[0]
    assert loaded.recommend(user, N=3)[0].tolist() == rec.recommend(user, N=3)[0].tolist()
    path = tmp_path / "rec.npz"
    path.write_bytes(buffer.getvalue()[len(b"header"):])  # the same bytes as a saved path
    assert IdRecommender.load(path).users == rec.users
    with open(path, "rb") as f:
        assert fastals.load(f).get_params() == rec.model.get_params()


def test_save_refuses_unsaveable_ids_and_writes_nothing(tmp_path):
    m = sp.csr_matrix(np.eye(2))
    users = IdMapping([("a", 1), ("b", 2)])
    rec = IdRecommender(fastals.ImplicitALS(factors=2, iterations=1, random_state=0),
                        users=users)
    rec.model.fit(m, show_progress=False)
    with pytest.raises(TypeError, match="cannot be saved without pickle"):
        rec.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_plain_model_file_loads_with_integer_ids(tmp_path):
    m = sp.random(8, 6, density=0.5, format="csr", random_state=1)
    model = fastals.ImplicitALS(factors=2, iterations=2, random_state=0).fit(m, show_progress=False)
    path = model.save(tmp_path / "plain.npz")
    rec = IdRecommender.load(path)
    assert rec.users.ids.tolist() == list(range(8)) and rec.user_items is None
    ids, _ = rec.recommend(3, N=2, filter_already_liked_items=False)
    expected, _ = model.recommend(3, N=2, filter_already_liked_items=False)
    assert ids.tolist() == expected.tolist()
    with pytest.raises(ValueError, match="no training interactions"):
        rec.recommend(3)


def test_id_recommender_checks_sizes():
    m = sp.csr_matrix(np.eye(3))
    model = fastals.ImplicitALS(factors=2, iterations=1, random_state=0).fit(m, show_progress=False)
    with pytest.raises(ValueError, match="do not match the model"):
        IdRecommender(model, users=IdMapping(["a", "b"]), items=IdMapping(["x", "y", "z"]))
    with pytest.raises(TypeError, match="fastals recommender"):
        IdRecommender(object())


def test_no_warnings_on_clean_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_arrays(["a", "b"], ["x", "y"], [1, 2])


def test_from_arrays_with_metadata_and_repeated_metadata_rows():
    meta = pd.DataFrame({"title": ["X", "Y", "Y again"]}, index=["x", "y", "y"])
    with pytest.warns(DataWarning, match="1 repeated item ids"):
        data = from_arrays(["a", "b"], ["y", "x"], item_metadata=meta)
    assert dict(zip(data.items.ids, data.item_info["title"])) == {"x": "X", "y": "Y"}
    assert data.item_metadata.loc["y", "title"] == "Y"


def test_score_pairs_generic_path_on_many_pairs():
    rng = np.random.default_rng(0)
    m = sp.random(30, 20, density=0.3, format="csr", random_state=1)
    pop = PopularityBaseline().fit(m)
    users, items = rng.integers(0, 30, 500), rng.integers(0, 20, 500)
    assert np.array_equal(score_pairs(pop, users, items), pop.item_popularity[items])
    with pytest.raises(fastals.IdOutOfRangeError):
        score_pairs(pop, [30], [0])
