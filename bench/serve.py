"""``fastals serve``: requests per second and p50/p99 latency of single-user recommendations.

The model: ImplicitALS (K=64, 15 iterations) fitted on MovieLens 100K (the synthetic demo
data when the MovieLens folder is missing), saved with its ids and interactions, as
``fastals fit`` writes it. Each request is ``GET /recommend?user=U&n=10`` for a user drawn at
random (seeded), with the user's rated movies filtered out (the default).

The servers, each in its own process, started as a user would and alternated over rounds:

* ``fastals serve MODEL --workers 1`` and ``--workers 2`` (Starlette on uvicorn; uvicorn
  uses httptools when it is installed, as with the ``serve`` extra, else h11);
* for the choice of stack, a stdlib-only server (``http.server.ThreadingHTTPServer``,
  HTTP/1.1 keep-alive) in front of the same request logic, one process.

The load generator is this script's own closed-loop client (no third-party tool): a fresh
process holding C keep-alive HTTP/1.1 connections on asyncio streams, each sending its next
request when the previous answer has been read in full, a bounded number of requests in
all (and a time cap). Latency is from the request's write to its last byte read. The client
runs on the same 2 cores as the server, so it takes its share of the CPU: the figures are
what one machine does as client and server at once.

    python bench/serve.py           # 3 alternating rounds of 4,000 requests, 1 and 8 connections
    python bench/serve.py --quick   # 1 round of 1,000 requests

Then the memory check: a 500,000 x 50,000 item factor model served by 2 workers, with the
RSS of each process and how much of it is shared with the others (Linux only).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import movielens_path, run_worker, table, write_section  # noqa: E402

from fastals.serve.workers import launch, terminate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()


# --- the model --------------------------------------------------------------------------------
def make_model(folder):
    import fastals
    from fastals import datasets

    path = movielens_path()
    data = datasets.load("movielens", path) if path else datasets.make_synthetic(random_state=0)
    model = fastals.ImplicitALS(factors=64, iterations=15, regularization=0.05, random_state=0)
    rec = fastals.IdRecommender(model).fit(data, show_progress=False)
    name = "MovieLens 100K" if path else "synthetic demo data"
    return rec.save(Path(folder) / "model.npz"), name, rec


def direct_seconds(rec, users, repeats=2000):
    """Median seconds of one in-process rec.recommend(user, N=10) on one kernel thread, as in
    a worker: the work behind a request."""
    rec.model.num_threads = 1
    times = []
    for user in users[:repeats]:
        start = time.perf_counter()
        rec.recommend(user, N=10)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_large_model(folder, n_users=500_000, n_items=50_000, factors=64):
    """A factor model of random float32 factors (not fitted: sizes matter here, not quality),
    saved as an IdRecommender without interactions: the memory check."""
    import fastals
    from fastals._arrays import aligned

    model = fastals.ImplicitALS(factors=factors)
    rng = np.random.default_rng(0)
    model.user_factors = aligned(rng.standard_normal((n_users, factors), dtype=np.float32))
    model.item_factors = aligned(rng.standard_normal((n_items, factors), dtype=np.float32))
    return fastals.IdRecommender(model).save(Path(folder) / "large.npz")


def memory_check(folder, workers=2):
    """Serve the large model with `workers` workers, query both routes, and read each
    process's RSS and how much of it is shared (Linux smaps_rollup), in MiB."""
    import urllib.request

    path = make_large_model(folder)
    proc, port = start_server("fastals", path, workers, folder)
    try:
        for k in range(50):  # new connections: the kernel spreads them over the workers
            for route in (f"/recommend?user={k * 9973}&n=10", f"/similar?item={k * 997}&n=10"):
                urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=30).read()
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        rows = []
        for role, pid in [("first process", proc.pid)] + [("worker", c) for c in children]:
            fields = {}
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    fields[name] = int(value.split()[0]) / 1024
            rows.append([role, f"{fields['Rss']:.0f}",
                         f"{fields['Shared_Clean'] + fields['Shared_Dirty']:.0f}",
                         f"{fields['Private_Clean'] + fields['Private_Dirty']:.0f}",
                         f"{fields['Pss']:.0f}"])
    finally:
        terminate(proc)
    return Path(path).stat().st_size / 2**20, rows


# --- the servers ------------------------------------------------------------------------------
def start_server(kind, model, workers, folder):
    """Start a server process; (process, port)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if kind == "fastals":
        cmd = [sys.executable, "-m", "fastals", "serve", str(model), "--port", "0",
               "--workers", str(workers), "--log-level", "warning"]
    else:
        cmd = [sys.executable, str(SCRIPT), "--stdlib-server", str(model)]
    log = Path(folder) / f"server-{kind}-{workers}-{time.monotonic_ns()}.log"
    return launch(cmd, log, env=env, timeout=120)


def stdlib_server(model):
    """The stdlib-only alternative: ThreadingHTTPServer in front of the same Service."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    import fastals
    from fastals.serve.app import RequestError, Service
    from fastals.serve.workers import _warm_up

    rec = fastals.IdRecommender.load(model)
    _warm_up(rec)
    service = Service(rec)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes (see workers.bind)

        def do_GET(self):
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if url.path != "/recommend" or "user" not in query:
                    raise RequestError(404, "no route")
                status, body = 200, service.recommend(query["user"], query.get("n"), None,
                                                      None)[0]
            except RequestError as exc:
                status, body = exc.status, {"error": exc.message, "status": exc.status}
            except fastals.IdOutOfRangeError as exc:
                status, body = 404, {"error": str(exc), "status": 404}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print(f"stdlib server on http://127.0.0.1:{server.server_address[1]}", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


# --- the load generator (runs in its own process) -----------------------------------------------
async def _connection(port, paths, latencies, statuses, deadline):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in paths:
            if time.perf_counter() > deadline:
                break
            start = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses.append(int(head.split(b" ", 2)[1]))
    finally:
        writer.close()


async def _load(port, paths, connections, seconds):
    latencies, statuses = [], []
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, paths[k::connections], latencies, statuses,
                                       deadline) for k in range(connections)))
    return time.perf_counter() - start, latencies, statuses


def load_worker(spec):
    """For each connection count: requests/s, p50 and p99 ms, non-200 answers."""
    users = spec["users"]
    rng = np.random.default_rng(spec["seed"])
    paths = [f"/recommend?user={users[k]}&n=10" for k in rng.integers(0, len(users),
                                                                        spec["requests"])]
    asyncio.run(_load(spec["port"], paths[:spec["warmup"]], max(spec["connections"]), 30))
    out = {}
    for connections in spec["connections"]:
        wall, latencies, statuses = asyncio.run(_load(spec["port"], paths, connections,
                                                      spec["seconds"]))
        lat = np.array(latencies) * 1000
        out[str(connections)] = {"requests": len(lat), "rps": len(lat) / wall,
                                 "p50_ms": float(np.percentile(lat, 50)),
                                 "p99_ms": float(np.percentile(lat, 99)),
                                 "non_200": int(sum(s != 200 for s in statuses))}
    return out


# --- main ----------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--stdlib-server", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(load_worker(json.loads(args.worker))), flush=True)
        return
    if args.stdlib_server:
        stdlib_server(args.stdlib_server)
        return
    rounds = args.rounds or (1 if args.quick else 3)
    requests = args.requests or (1000 if args.quick else 4000)
    import uvicorn

    try:
        import httptools  # noqa: F401
        parser_name = "httptools"
    except ImportError:
        parser_name = "h11"
    configs = [("fastals", 1), ("fastals", 2), ("stdlib", 1)]
    results = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as folder:
        model, data_name, rec = make_model(folder)
        users = [str(u) for u in rec.users.ids.tolist()]
        direct = direct_seconds(rec, [rec.users.ids[k] for k in
                                      np.random.default_rng(1).integers(0, len(users), 2000)])
        print(f"model: {rec.model!r} on {data_name}; in-process recommend "
              f"{direct * 1e6:.0f} us", flush=True)
        for rnd in range(rounds):
            order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
            for kind, workers in order:
                proc, port = start_server(kind, model, workers, folder)
                try:
                    spec = {"port": port, "users": users, "requests": requests,
                            "warmup": min(500, requests), "connections": args.connections,
                            "seconds": 60, "seed": rnd}
                    result = run_worker(SCRIPT, spec, timeout=300)
                finally:
                    terminate(proc)
                print(f"  round {rnd + 1}: {kind} x{workers}: {result}", flush=True)
                results[(kind, workers)].append(result)
        size, memory_rows = memory_check(folder)
    load = os.getloadavg()
    rows = []
    for connections in args.connections:
        base = None
        for (kind, workers), runs in results.items():
            good = [r[str(connections)] for r in runs if "error" not in r]
            label = f"fastals serve (Starlette + uvicorn, {parser_name})" if kind == "fastals" \
                else "stdlib ThreadingHTTPServer, same logic"
            if not good:
                rows.append([label, workers, connections, "error: " + runs[0]["error"], "", "",
                             "", ""])
                continue
            rps = statistics.median(r["rps"] for r in good)
            base = base or rps
            rows.append([label, workers, connections, f"{rps:,.0f}", f"{rps / base:.2f}",
                         f"{statistics.median(r['p50_ms'] for r in good):.2f}",
                         f"{statistics.median(r['p99_ms'] for r in good):.2f}",
                         sum(r["non_200"] for r in good)])
    header = ["server", "workers", "connections", "requests/s", "vs fastals 1 worker",
              "p50 ms", "p99 ms", "non-200"]
    body = (f"`python bench/serve.py{' --quick' if args.quick else ''}`: ImplicitALS (K=64) on "
            f"{data_name}, `GET /recommend?user=U&n=10` for random users (seeded), liked items "
            f"filtered. Load: this script's closed-loop asyncio client (keep-alive HTTP/1.1, "
            f"{' and '.join(map(str, args.connections))} connections, {requests:,} requests "
            f"per run after "
            f"{min(500, requests)} warm-up ones), in its own process on the same 2 cores as "
            f"the server. Medians of {rounds} alternating run{'s' if rounds > 1 else ''}, each "
            f"server started afresh. uvicorn {uvicorn.__version__}. In-process "
            f"`recommend` of one user: {direct * 1e6:.0f} us (median). Load average at the end: "
            f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}.\n\n" + table(header, rows) +
            f"\n\nMemory with 2 workers, serving a {size:.0f} MiB model file (500,000 users x "
            "50,000 items, K=64, random float32 factors, no interactions) after 50 requests "
            "to each route, MiB from /proc/PID/smaps_rollup (shared: pages the first process "
            "and the workers hold once between them; PSS: each process's fair share):\n\n" +
            table(["process", "RSS", "shared", "private", "PSS"], memory_rows))
    print(body)
    if not args.no_write:
        write_section("fastals serve (bench/serve.py)", body)


if __name__ == "__main__":
    main()
