"""``fastals serve``: real HTTP requests on loopback to the service, run as ``python -m
fastals serve`` in a subprocess (one worker and two), and in a thread for what needs the
test to reach inside (an unexpected failure must be a generic 500, logged).

Skipped when the ``serve`` extra (starlette, uvicorn) is not installed.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import uvicorn  # noqa: E402

import fastals  # noqa: E402
from fastals.cli.registry import MODELS  # noqa: E402
from fastals.data import from_arrays  # noqa: E402
from fastals.serve import create_app  # noqa: E402
from fastals.serve.workers import bind, launch, terminate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

PLAYS = [("ann", "Jay-Z", 10), ("ann", "Kanye West", 5), ("ann", "Nas", 3),
         ("bob", "Jay-Z", 3), ("bob", "Nas", 4), ("bob", "Kanye West", 1),
         ("cat", "Miles Davis", 8), ("cat", "John Coltrane", 9), ("dan", "Miles Davis", 2),
         ("dan", "John Coltrane", 4), ("dan", "Thelonious Monk", 6), ("eve", "Jay-Z", 7),
         ("eve", "Kanye West", 2), ("fay", "John Coltrane", 3), ("fay", "Thelonious Monk", 5),
         ("fay", "Nas", 1), ("gil", "Eric Dolphy", 2), ("gil", "Miles Davis", 1)]


@pytest.fixture(scope="module")
def rec():
    users, items, plays = zip(*PLAYS)
    data = from_arrays(list(users), list(items), np.array(plays, dtype=float))
    model = fastals.ImplicitALS(factors=4, iterations=3, random_state=0)
    return fastals.IdRecommender(model).fit(data, show_progress=False)


@pytest.fixture(scope="module")
def model_file(rec, tmp_path_factory):
    return rec.save(tmp_path_factory.mktemp("serve") / "plays.npz")


def _start(model_file, folder, *flags):
    """`python -m fastals serve` on a free port; (process, port, stderr file)."""
    log = Path(folder) / f"serve-{time.monotonic_ns()}.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc, port = launch([sys.executable, "-m", "fastals", "serve", str(model_file), "--port",
                         "0", *flags], log, env=env)
    return proc, port, log


@pytest.fixture(scope="module")
def server(model_file, tmp_path_factory):
    proc, port, log = _start(model_file, tmp_path_factory.mktemp("server"), "--max-batch", "5")
    yield port
    assert terminate(proc, timeout=20) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def call(port, method, path, body=None, raw=None):
    """(status, headers, parsed JSON body) of one request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        assert response.getheader("content-type") == "application/json", text
        assert "Traceback" not in text
        return response.status, dict(response.getheaders()), json.loads(text)
    finally:
        conn.close()


def expected(rec, user, N=10, **kwargs):
    ids, scores = rec.recommend(user, N=N, **kwargs)
    return [(item, pytest.approx(float(score), rel=1e-6)) for item, score in zip(ids, scores)]


def pairs(result):
    return [(entry["item"], entry["score"]) for entry in result["items"]]


# --- what a client gets ------------------------------------------------------------------
def test_health(server, rec):
    status, _, body = call(server, "GET", "/health")
    assert status == 200
    assert body["status"] == "ok" and body["model"] == "ImplicitALS"
    assert (body["users"], body["items"]) == (rec.model.n_users, rec.model.n_items)
    assert body["filters_liked_items"] is True and body["similar_items"] is True


def test_recommend_one_user_filters_what_they_have(server, rec):
    status, _, body = call(server, "GET", "/recommend?user=ann&n=3")
    assert status == 200 and body["user"] == "ann"
    assert pairs(body) == expected(rec, "ann", N=3)
    assert not {"Jay-Z", "Kanye West", "Nas"} & {item for item, _ in pairs(body)}


def test_recommend_options(server, rec):
    _, _, body = call(server, "GET", "/recommend?user=ann&n=4&filter_already_liked_items=false")
    assert pairs(body) == expected(rec, "ann", N=4, filter_already_liked_items=False)
    assert "Jay-Z" in {item for item, _ in pairs(body)}
    path = "/recommend?user=ann&n=7&filter_items=Miles%20Davis&filter_items=Eric%20Dolphy"
    _, _, body = call(server, "GET", path)
    assert pairs(body) == expected(rec, "ann", N=7, filter_items=["Miles Davis", "Eric Dolphy"])
    assert not {"Miles Davis", "Eric Dolphy"} & {item for item, _ in pairs(body)}


def test_recommend_batch(server, rec):
    status, _, body = call(server, "POST", "/recommend", ["ann", "cat", "gil"])
    assert status == 200
    assert [r["user"] for r in body["results"]] == ["ann", "cat", "gil"]
    for result in body["results"]:
        assert pairs(result) == expected(rec, result["user"])
    status, _, body = call(server, "POST", "/recommend",
                           {"users": ["bob"], "n": 2, "filter_items": ["Miles Davis"]})
    assert status == 200
    assert pairs(body["results"][0]) == expected(rec, "bob", N=2, filter_items=["Miles Davis"])


def test_similar(server, rec):
    status, _, body = call(server, "GET", "/similar?item=Jay-Z&n=3")
    assert status == 200 and body["item"] == "Jay-Z"
    ids, scores = rec.similar_items("Jay-Z", N=3)
    assert pairs(body) == [(i, pytest.approx(float(s), rel=1e-6)) for i, s in zip(ids, scores)]
    assert body["items"][0]["item"] == "Jay-Z"
    _, _, body = call(server, "GET", "/similar?item=Jay-Z&n=3&filter_items=Jay-Z")
    assert "Jay-Z" not in {item for item, _ in pairs(body)}


# --- bad requests: a clear JSON error, never a 500 ------------------------------------------
@pytest.mark.parametrize("method, path, body, status, fragment", [
    ("GET", "/recommend?user=zed", None, 404, "user 'zed' is not known"),
    ("POST", "/recommend", ["ann", "zed"], 404, "user 'zed' is not known"),
    ("GET", "/similar?item=Bach", None, 404, "item 'Bach' is not known"),
    ("GET", "/recommend?user=ann&filter_items=Bach", None, 404, "item 'Bach'"),
    ("GET", "/recommend?user=ann&n=0", None, 422, "n must be an integer from 1 to 1000"),
    ("GET", "/recommend?user=ann&n=-3", None, 422, "got '-3'"),
    ("GET", "/recommend?user=ann&n=1001", None, 422, "got '1001'"),
    ("GET", "/recommend?user=ann&n=" + "9" * 40, None, 422, "n must be an integer"),
    ("GET", "/recommend?user=ann&n=abc", None, 422, "got 'abc'"),
    ("GET", "/recommend?user=ann&n=2.5", None, 422, "got '2.5'"),
    ("GET", "/similar?item=Nas&n=0", None, 422, "n must be an integer"),
    ("POST", "/recommend", {"users": ["ann"], "n": 0}, 422, "got 0"),
    ("POST", "/recommend", {"users": ["ann"], "n": 1e9}, 422, "n must be an integer"),
    ("POST", "/recommend", {"users": ["ann"], "n": "5"}, 422, "n must be an integer, got \"5\""),
    ("POST", "/recommend", {"users": ["ann"], "filter_already_liked_items": "no"}, 422,
     "true or false"),
    ("GET", "/recommend", None, 422, "give the user"),
    ("GET", "/recommend?user=", None, 422, "user must be a non-empty string"),
    ("GET", "/similar?item=", None, 422, "item must be a non-empty string"),
    ("GET", "/similar", None, 422, "give the item"),
    ("GET", "/recommend?usr=ann", None, 422, "unknown parameter 'usr'"),
    ("GET", "/recommend?user=ann&n=2&n=3", None, 422, "n given 2 times"),
    ("GET", "/recommend?user=ann&filter_already_liked_items=maybe", None, 422, "true or false"),
    ("POST", "/recommend", {"user": ["ann"]}, 422, "unknown field 'user'"),
    ("POST", "/recommend", {"n": 3}, 422, "give the users"),
    ("POST", "/recommend", "ann", 422, "a JSON list of user ids"),
    ("POST", "/recommend", [], 422, "1 to 5 users, got 0"),
    ("POST", "/recommend", ["ann"] * 6, 422, "1 to 5 users, got 6"),
    ("POST", "/recommend", [["ann"]], 422, "users must be a non-empty string or an integer"),
    ("POST", "/recommend", {"users": ["ann"], "filter_items": "Nas"}, 422, "must be a list"),
    ("GET", "/nowhere", None, 404, "no route '/nowhere'"),
    ("DELETE", "/recommend", None, 405, "DELETE is not allowed on /recommend"),
    ("POST", "/similar", None, 405, "POST is not allowed on /similar"),
    ("PUT", "/health", None, 405, "PUT is not allowed on /health"),
])
def test_bad_requests(server, method, path, body, status, fragment):
    got, headers, answer = call(server, method, path, body)
    assert got == status, answer
    assert answer["status"] == status and fragment in answer["error"], answer
    if status == 405:
        assert "GET" in {h.strip() for h in headers["allow"].split(",")}


@pytest.mark.parametrize("raw, status, fragment", [
    (b'["ann", ', 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"", 400, "not valid JSON"),
    (b"[" + b'"ann",' * 200_000 + b'"ann"]', 413, "at most 1048576 bytes"),
])
def test_bad_bodies(server, raw, status, fragment):
    got, _, answer = call(server, "POST", "/recommend", raw=raw)
    assert got == status and fragment in answer["error"], answer


# --- in a thread: an unexpected failure, integer ids ------------------------------------------
@pytest.fixture
def threaded():
    """Serve an app in a thread on a free port: start(app) -> port."""
    servers = []

    def start(app):
        sock = bind("127.0.0.1", 0)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread, sock))
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started
        return sock.getsockname()[1]

    yield start
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_an_unexpected_failure_is_a_generic_500_and_logged(threaded, caplog):
    matrix = sp.csr_matrix(np.array([[1.0, 0, 2, 0], [0, 3, 0, 1], [4, 0, 0, 1]]))
    model = fastals.ImplicitALS(factors=2, iterations=2, random_state=0)
    rec = fastals.IdRecommender(model).fit(matrix, show_progress=False)
    port = threaded(create_app(rec))
    status, _, body = call(port, "GET", "/recommend?user=1&n=2")  # "1" finds integer id 1
    assert status == 200 and body["user"] == 1
    assert pairs(body) == expected(rec, 1, N=2)

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    rec.model.recommend = broken
    with caplog.at_level("ERROR", logger="fastals.serve"):
        status, _, body = call(port, "GET", "/recommend?user=1")
    assert status == 500 and body == {"error": "internal server error", "status": 500}
    assert any("secret internals" in (r.exc_text or "") or
               (r.exc_info and "secret internals" in str(r.exc_info[1]))
               for r in caplog.records)
    assert call(port, "GET", "/health")[0] == 200  # the worker goes on


def test_a_model_without_similar_items_says_so(threaded):
    matrix = sp.csr_matrix(np.array([[1.0, 0, 2, 0], [0, 3, 0, 1], [4, 0, 0, 1]]))
    rec = fastals.IdRecommender(fastals.PopularityBaseline()).fit(matrix, show_progress=False)
    port = threaded(create_app(rec))
    status, _, body = call(port, "GET", "/similar?item=0")
    assert status == 501 and "no notion of similar items" in body["error"]
    assert call(port, "GET", "/health")[2]["similar_items"] is False
    status, _, body = call(port, "GET", "/recommend?user=0&n=2")
    assert status == 200 and pairs(body) == expected(rec, 0, N=2)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_is_served(threaded, name):
    """Every model `fastals fit` makes answers each route, with and without the filter."""
    matrix = sp.random(30, 20, density=0.3, random_state=0, format="csr")
    matrix.data[:] = np.ceil(matrix.data * 5)  # ratings 1..5 suit the explicit models too
    model = getattr(fastals, MODELS[name].attribute)()
    rec = fastals.IdRecommender(model).fit(matrix, show_progress=False)
    port = threaded(create_app(rec))
    for flag in ("true", "false"):
        path = f"/recommend?user=3&n=4&filter_already_liked_items={flag}"
        status, _, body = call(port, "GET", path)
        assert status == 200 and pairs(body) == expected(
            rec, 3, N=4, filter_already_liked_items=flag == "true")
    status, _, body = call(port, "POST", "/recommend", [3, 4])
    assert status == 200 and len(body["results"]) == 2
    status, _, body = call(port, "GET", "/similar?item=2&n=3")
    assert status == (200 if MODELS[name].similar else 501), body


def test_the_socket_is_tcp_without_nagle():
    """asyncio sets TCP_NODELAY only on sockets whose proto says TCP; with Nagle on, each
    response (headers, then body) waited for the client's delayed ACK: 40 ms a request."""
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_a_batch_asks_for_a_bounded_number_of_results(threaded):
    matrix = sp.csr_matrix(np.array([[1.0, 0, 2, 0], [0, 3, 0, 1], [4, 0, 0, 1]]))
    model = fastals.ImplicitALS(factors=2, iterations=2, random_state=0)
    port = threaded(create_app(fastals.IdRecommender(model).fit(matrix, show_progress=False)))
    status, _, body = call(port, "POST", "/recommend", {"users": [0] * 101, "n": 1000})
    assert status == 422 and "at most 100000 results (users x n), got 101 x 1000" in body["error"]
    status, _, body = call(port, "POST", "/recommend", {"users": [0] * 100, "n": 1000})
    assert status == 200 and len(body["results"]) == 100


# --- the command --------------------------------------------------------------------------
def test_two_workers_share_the_port_and_stop_on_sigterm(model_file, tmp_path, rec):
    proc, port, log = _start(model_file, tmp_path, "--workers", "2")
    try:
        pids = set()
        for _ in range(200):  # the kernel spreads new connections over both workers
            status, _, body = call(port, "GET", "/health")
            assert status == 200
            pids.add(body["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2 and proc.pid not in pids
        _, _, body = call(port, "GET", "/recommend?user=dan&n=2")
        assert pairs(body) == expected(rec, "dan", N=2)
    finally:
        code = terminate(proc, timeout=20)
    assert code == 0, log.read_text()
    for pid in pids:  # every worker is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_stop_while_the_workers_start_is_not_lost(model_file, tmp_path):
    """SIGTERM right after the socket listens reaches workers still starting uvicorn: they
    stop once started (the signal was once swallowed there, leaving them running)."""
    proc, _, log = _start(model_file, tmp_path, "--workers", "2")
    assert terminate(proc, timeout=30) == 0, log.read_text()


def _cli(*args, prelude=""):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = f"import sys\n{prelude}\nfrom fastals.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=60)


def test_command_errors_are_one_line(model_file, tmp_path):
    done = _cli("serve", tmp_path / "missing.npz")
    assert done.returncode == 1 and "missing.npz: no such model file" in done.stderr
    done = _cli("serve", model_file, "--port", "70000")
    assert done.returncode == 2 and "a port from 0 to 65535" in done.stderr
    done = _cli("serve", model_file, prelude="sys.modules['starlette'] = None")
    assert done.returncode == 1 and "pip install 'fastals[serve]'" in done.stderr
    for stderr in (done.stderr,):
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
