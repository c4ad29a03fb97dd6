"""Running the service: load the model once, bind the socket, fork the workers, supervise.

:func:`serve` is what ``fastals serve MODEL.npz`` runs. The model is loaded, checked and
warmed up (the arrays derived from the factors, such as the transposed item factors, are
computed) in the first process, which then binds the listening socket and, for more than one
worker, forks the workers: each runs its own uvicorn event loop on the inherited socket (the
kernel hands each connection to one of them), and reads the model from the memory it
inherited. The factors are never written after loading, so their pages stay shared between
the processes, copy-on-write: N workers hold one copy of the model, not N. A worker that
dies is replaced (forked again from the same loaded model) unless it died at once.

:func:`launch` and :func:`terminate` run ``fastals serve`` from another program (tests,
benchmarks, scripts) in a subprocess: started, its port read once it listens, stopped.

Two things make the fork safe: no OpenMP thread exists before it (the warm-up runs the
kernels on one thread, and every worker sets its own kernel thread count after the fork),
and no event loop exists before it (each worker makes its own). OpenBLAS's threads, started
when numpy is imported, are made fork-safe by OpenBLAS's own fork handlers. Forking needs a
POSIX system; one worker (the default) runs in the first process and needs no fork.

Imports: the standard library, uvicorn, :mod:`fastals.serve.app` and, inside
:func:`serve`, :mod:`fastals.id_recommender`.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import uvicorn

from fastals.serve.app import MAX_BATCH, MAX_N, create_app

log = logging.getLogger("fastals.serve")

#: a worker that exits sooner than this after its start is not replaced (it would again)
_MIN_WORKER_SECONDS = 5.0
#: the signals that stop the service
_STOPS = {signal.SIGTERM, signal.SIGINT}


def _set_threads(rec, threads: int) -> None:
    if hasattr(rec.model, "num_threads"):
        rec.model.num_threads = threads


def _warm_up(rec) -> None:
    """One query of each kind, on one kernel thread, so that the arrays the models derive
    from their factors are made before the fork (and shared) rather than in every worker."""
    _set_threads(rec, 1)
    user, item = rec.users.ids[0], rec.items.ids[0]
    for query in (lambda: rec.recommend(user, N=1,
                                        filter_already_liked_items=rec.user_items is not None),
                  lambda: rec.similar_items(item, N=1)):
        try:
            query()
        except Exception as exc:  # e.g. a model without similar items: nothing to warm
            log.debug("warm-up query skipped: %s", exc)


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets that say they are TCP, and the connections accepted inherit it. With Nagle on,
    # a response written as headers then body waits for the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _run_worker(app, sock: socket.socket, log_level: str, access_log: bool) -> None:
    """uvicorn on `sock` until SIGTERM or SIGINT, then return.

    uvicorn installs its own handlers only once it runs; a signal that comes before (while
    it starts) sets its exit flag here, so it stops as soon as it has started instead of
    the signal being lost. After its graceful shutdown uvicorn re-raises the signal to the
    handler it found, this one, so a stop is a normal exit (code 0), not a death by signal.
    """
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="off",
                            server_header=False)
    server = uvicorn.Server(config)

    def stop(signum, frame):
        server.should_exit = True

    previous = {s: signal.signal(s, stop) for s in _STOPS}
    try:
        server.run(sockets=[sock])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _fork_worker(start: Callable[[], None]) -> int:
    """Fork a worker running `start`; its pid. SIGTERM and SIGINT are held back across the
    fork, so that the worker never runs the first process's handlers: it gets them only
    once its own are in place."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns of the BLAS threads (see above)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
        return pid
    code = 0
    try:  # the first process's signal handlers are not the worker's
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
        start()
    except KeyboardInterrupt:
        pass
    except BaseException:
        log.exception("worker %d failed", os.getpid())
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def _supervise(start: Callable[[], None], workers: int) -> int:
    """Fork `workers` processes running `start`, replace those that die, stop them all on
    SIGTERM or SIGINT; returns 0, or 1 when a worker died at once."""
    started: dict[int, float] = {}
    stopping = False
    failed = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for pid in list(started):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def fork():
        pid = _fork_worker(start)
        started[pid] = time.monotonic()
        if stopping:  # a stop that came while it was forked did not know of it
            os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in _STOPS}
    try:
        for _ in range(workers):
            if not stopping:
                fork()
        while started:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            began = started.pop(pid, None)
            if began is None or stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            if time.monotonic() - began < _MIN_WORKER_SECONDS:
                log.error("worker %d exited at once (code %d): stopping", pid, code)
                failed = True
                stop(None, None)
            else:
                log.warning("worker %d exited (code %d): starting another", pid, code)
                fork()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 1 if failed else 0


def serve(path: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          threads: int = 1, max_n: int = MAX_N, max_batch: int = MAX_BATCH,
          log_level: str = "info", access_log: bool = False,
          on_ready: Callable[[str, int], Any] | None = None) -> int:
    """Serve the model file at `path` over HTTP until SIGTERM or SIGINT; returns 0 (or 1
    when a worker failed at once).

    Parameters
    ----------
    path : str or Path
        A model saved by ``fastals fit`` / :meth:`IdRecommender.save` (the caller's ids and
        the training interactions in one ``.npz``; a plain model file serves ids 0..n-1).
    host, port : str, int
        Where to listen: loopback only by default; port 0 picks a free port.
    workers : int
        Processes answering requests; more than one forks them after the model is loaded.
    threads : int
        Kernel threads per worker (1: a single-user query is too small to split).
    max_n, max_batch : int
        The largest ``n`` and the most users of a batch a request may ask for.
    on_ready : callable, optional
        Called with the host and the bound port once the socket listens (before the workers
        start: connections wait in the socket's queue meanwhile).
    """
    from fastals.id_recommender import IdRecommender

    if workers > 1 and not hasattr(os, "fork"):
        raise ValueError(f"workers={workers} needs a system with fork (POSIX); run one worker "
                         "per process behind a proxy instead")
    rec = IdRecommender.load(path)
    _warm_up(rec)
    app = create_app(rec, max_n=max_n, max_batch=max_batch)
    sock = bind(host, port)
    try:
        bound = sock.getsockname()[1]
        if on_ready is not None:
            on_ready(host, bound)

        def start():
            _set_threads(rec, threads)
            _run_worker(app, sock, log_level, access_log)

        if workers == 1:
            start()
            return 0
        return _supervise(start, workers)
    finally:
        sock.close()


def configure_logging(level: str = "info") -> None:
    """Log ``fastals.serve`` to stderr (with the worker's process id) unless it has a handler."""
    logger = logging.getLogger("fastals.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s fastals.serve[%(process)d] "
                                               "%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())


# --- from another program ------------------------------------------------------------------------
_LISTENING = re.compile(r" on http://(?:\[[^\]]*\]|[^\s:/]+):(\d+)")


def launch(args: list[str], log_path: str | Path, env: dict[str, str] | None = None,
           timeout: float = 60.0) -> tuple[subprocess.Popen, int]:
    """Start a server command (e.g. ``[sys.executable, "-m", "fastals", "serve", MODEL,
    "--port", "0"]``) with its stderr to `log_path`; (the process, its port) once it says it
    listens ("... on http://HOST:PORT ..."). RuntimeError with the log if it exits or is
    silent for `timeout` seconds first (it is then killed)."""
    log = Path(log_path)
    with open(log, "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _LISTENING.search(log.read_text())
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the server did not start: {log.read_text()}")


def terminate(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """Stop a launched server with SIGTERM (killed after `timeout` s); its exit code."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
