"""The fastals command, end to end in subprocesses (``python -m fastals``), plus its registry."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.sparse as sp

from fastals import cli

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd, timeout=120):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "fastals", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc, *fragments, code=1):
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("fastals: warning")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fastals: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


PLAYS = """user,artist,plays
ann,Jay-Z,10
ann,Kanye West,5
ann,Nas,3
bob,Jay-Z,3
bob,Nas,4
bob,Kanye West,1
cat,Miles Davis,8
cat,John Coltrane,9
dan,Miles Davis,2
dan,John Coltrane,4
dan,Thelonious Monk,6
eve,Jay-Z,7
eve,Kanye West,2
fay,John Coltrane,3
fay,Thelonious Monk,5
"""


@pytest.fixture
def plays_csv(tmp_path):
    path = tmp_path / "plays.csv"
    path.write_text(PLAYS)
    return path


def test_demo_runs_quickly_and_exits_0(tmp_path):
    proc = run("demo", cwd=tmp_path, timeout=60)  # the bound: under a minute
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "trained ImplicitALS" in out and "popularity" in out and "precision@10" in out
    assert "recommended for" in out and "items similar to" in out
    assert proc.stderr == ""  # not a terminal: no progress bars, no notes


def test_demo_on_movielens(tmp_path, ml100k_path):
    proc = run("demo", "--data", "movielens-100k", ml100k_path, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Star Wars (1977)" in proc.stdout


def test_fit_recommend_similar_by_original_ids(tmp_path, plays_csv):
    proc = run("fit", plays_csv, "--model", "implicit-als", "--factors", "4", "--iterations",
               "10", "--regularization", "0.1", "-o", "model.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "model.npz").exists()
    proc = run("recommend", "model.npz", "--user", "eve", "--user", "fay", "-n", "2", "--json",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [r["user"] for r in results] == ["eve", "fay"]
    eve = [entry["item"] for entry in results[0]["items"]]
    assert eve[0] == "Nas"  # the hip-hop item eve has not played yet
    assert not {"Jay-Z", "Kanye West"} & set(eve)  # already played: filtered
    fay = [entry["item"] for entry in results[1]["items"]]
    assert fay[0] == "Miles Davis"
    proc = run("similar", "model.npz", "--item", "John Coltrane", "-n", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "items similar to John Coltrane:"
    ranked = [line.split()[1:-1] for line in lines[2:5]]  # rank, item words, score
    names = [" ".join(words) for words in ranked]
    # the item itself first, then the other jazz items (their order is a near-tie)
    assert names[0] == "John Coltrane"
    assert set(names[1:]) == {"Miles Davis", "Thelonious Monk"}
    proc = run("recommend", "model.npz", "--user", "nobody", cwd=tmp_path)
    assert_one_line_error(proc, "user 'nobody' is not known")
    proc = run("similar", "model.npz", "--item", "Beatles", cwd=tmp_path)
    assert_one_line_error(proc, "item 'Beatles' is not known")


def test_recommend_text_output_and_integer_ids(tmp_path):
    csv = tmp_path / "r.tsv"
    csv.write_text("1\t10\t5\n1\t20\t3\n2\t10\t4\n2\t30\t5\n3\t20\t2\n3\t30\t1\n")
    proc = run("fit", csv, "--factors", "2", "--iterations", "3", "-o", "m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote m.npz" in proc.stdout
    proc = run("recommend", "m.npz", "--user", "1", "-n", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "recommendations for user 1:"
    assert " 30 " in proc.stdout  # the only item user 1 has not rated
    proc = run("recommend", "m.npz", "--user", "1", "--include-seen", "-n", "5", "--json",
               cwd=tmp_path)
    assert sorted(e["item"] for e in json.loads(proc.stdout)[0]["items"]) == [10, 20, 30]


def test_evaluate_prints_metrics_against_popularity(tmp_path):
    proc = run("evaluate", "synthetic", "--factors", "8", "--iterations", "5", "-k", "5",
               "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert set(results) == {"implicit-als", "popularity"}
    for metrics in results.values():
        assert {"precision", "recall", "map", "ndcg", "auc", "coverage"} <= set(metrics)
    assert results["implicit-als"]["precision"] > results["popularity"]["precision"]
    proc = run("evaluate", "synthetic", "--iterations", "2", "--no-baseline", cwd=tmp_path)
    assert proc.returncode == 0 and "popularity" not in proc.stdout
    assert proc.stdout.splitlines()[0].split()[:2] == ["model", "precision@10"]


@pytest.mark.parametrize("content, fragments", [
    ("user,item,plays\na,x,1\n", ["no value column 'rating'", "columns: user, item, plays"]),
    ("user,item,rating\na,x,1\nb,y,lots\n", ["line 3", "column 'rating'", "'lots'"]),
    ("", ["is empty"]),
])
def test_bad_csv_exits_non_zero_with_one_line(tmp_path, content, fragments):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    extra = ["--value-col", "rating"] if "no value column" in fragments[0] else []
    proc = run("fit", path, *extra, "-o", "out.npz", cwd=tmp_path)
    assert_one_line_error(proc, "bad.csv", *fragments)
    assert not (tmp_path / "out.npz").exists()  # nothing written when fitting fails
    assert not list(tmp_path.glob(".fastals-*"))


def test_missing_paths_and_unwritable_output(tmp_path, plays_csv):
    assert_one_line_error(run("fit", "absent.csv", "-o", "m.npz", cwd=tmp_path),
                          "absent.csv: no such file")
    assert_one_line_error(run("recommend", "absent.npz", "--user", "a", cwd=tmp_path),
                          "absent.npz: no such model file")
    assert_one_line_error(run("fit", plays_csv, "-o", tmp_path / "no" / "m.npz", cwd=tmp_path),
                          "no such folder")
    (tmp_path / "notamodel.npz").write_text("hello")
    assert_one_line_error(run("recommend", "notamodel.npz", "--user", "a", cwd=tmp_path),
                          "notamodel.npz")


def test_usage_errors_exit_2(tmp_path, plays_csv):
    assert_one_line_error(run(cwd=tmp_path), "give a command", code=2)
    assert_one_line_error(run("fit", plays_csv, cwd=tmp_path), "--output", code=2)
    assert_one_line_error(run("recommend", "m.npz", "--user", "a", "-n", "0", cwd=tmp_path),
                          "-n", code=2)
    assert_one_line_error(run("fit", plays_csv, "--model", "nope", "-o", "m.npz", cwd=tmp_path),
                          "unknown model 'nope'", code=2)
    assert_one_line_error(run("fit", plays_csv, "--model", "popularity", "--factors", "3",
                              "-o", "m.npz", cwd=tmp_path), "has no parameter 'factors'", code=2)
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0 and "demo" in proc.stdout


def test_debug_shows_the_traceback(tmp_path):
    proc = run("fit", "absent.csv", "-o", "m.npz", "--debug", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and proc.stderr.strip().endswith("no such file or folder")


def test_models_lists_the_registry(tmp_path):
    proc = run("models", cwd=tmp_path)
    assert proc.returncode == 0
    line = next(line for line in proc.stdout.splitlines() if line.startswith("implicit-als"))
    assert "ImplicitALS" in line and "yes" in line


def test_bench_quick_check(tmp_path):
    proc = run("bench", "--repeats", "1", "--iterations", "1", "--json",
               "--factors", "16", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["seconds_per_iteration"]["fastals"] > 0 and result["reference"] > 0


def test_bench_is_a_self_check_without_peer_libraries(monkeypatch, capsys):
    for peer in ("implicit", "surprise", "pyspark", "sparse_dot_topn"):
        monkeypatch.setitem(sys.modules, peer, None)  # importing it now raises ImportError
    assert cli.main(["bench", "--repeats", "1", "--iterations", "1", "--factors", "4",
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "numpy reference" in out and ": ok" in out and "bench/" in out
    assert any(f"the {isa} build" in out for isa in ("generic", "avx2", "avx512"))


# --- the registry, in process ---------------------------------------------------------------
def test_registry_reports_missing_models_and_picks_up_new_ones(monkeypatch):
    import fastals

    monkeypatch.delattr(fastals, "ExplicitALS", raising=False)
    with pytest.raises(cli.CLIError, match="model explicit-als is not available in this version"):
        cli.resolve_model("explicit-als")

    class ExplicitALS(fastals.PopularityBaseline):  # a stand-in: the lookup is by name
        pass

    monkeypatch.setattr(fastals, "ExplicitALS", ExplicitALS, raising=False)
    assert cli.resolve_model("explicit-als") is ExplicitALS
    with pytest.raises(cli.UsageError, match="unknown model"):
        cli.resolve_model("svd++")


def test_every_registered_model_ships_and_says_whether_it_ranks_similar_items():
    import fastals

    for name, spec in cli.MODELS.items():
        cls = cli.resolve_model(name)
        assert cls is getattr(fastals, spec.attribute)
        model = cls()
        assert isinstance(model, fastals.RecommenderBase)
        fitted = model.fit(sp.random(12, 8, density=0.5, format="csr", random_state=0) * 5,
                           show_progress=False)
        if spec.similar:
            ids, _ = fitted.similar_items(0, N=3)
            assert ids[0] == 0
        else:
            with pytest.raises(TypeError):
                fitted.similar_items(0, N=3)


def test_main_returns_exit_codes_in_process(capsys, plays_csv, tmp_path):
    assert cli.main(["fit", str(plays_csv), "--quiet", "--factors", "2", "--iterations", "2",
                     "-o", str(tmp_path / "q.npz")]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "wrote" in captured.out
    assert cli.main(["recommend", str(tmp_path / "q.npz"), "--user", "zed"]) == 1
    assert cli.main(["bogus"]) == 2


def test_a_file_of_ones_own_named_ratings_csv_is_a_plain_csv(tmp_path):
    (tmp_path / "ratings.csv").write_text("user,item,rating\na,x,5\nb,y,3\na,y,1\n")
    assert cli._detect_dataset(tmp_path / "ratings.csv") is None
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3,4\n")
    assert cli._detect_dataset(tmp_path / "ml" / "ratings.csv") == "movielens"
    assert cli._detect_dataset(tmp_path / "ml") == "movielens"
