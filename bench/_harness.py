"""Shared benchmark plumbing: one process per measurement, alternating peers, medians,
peak memory, cached synthetic data, and a section of bench/RESULTS.md per script.

Each measurement runs `python <script> --worker '<json>'` in a fresh process (two OpenMP
runtimes in one process skew each other) and reads one JSON line back. Every script writes
its results through :func:`write_section`, and takes its splits and metrics (precision@K,
RMSE) from fastals.evaluation, as a user would compute them, rather than its own copies.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
RESULTS = BENCH / "RESULTS.md"


def run_worker(script, spec, timeout=3600):
    """Run one measurement in its own process; returns its JSON result (or an error).

    A spec with "python" (and "script") runs under that interpreter (a peer's own virtual
    environment) and that script instead."""
    cmd = [spec.get("python", sys.executable), str(spec.get("script", script)), "--worker",
           json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail) or f"exit code {proc.returncode}"}


def alternate(script, specs, repeats, log=print):
    """Run each spec `repeats` times, rotating their order every round; returns lists of
    results per spec (same order as `specs`)."""
    results = [[] for _ in specs]
    for rep in range(repeats):
        order = list(range(len(specs)))
        order = order[rep % len(order):] + order[:rep % len(order)]
        for k in order:
            result = run_worker(script, specs[k])
            results[k].append(result)
            if log:
                log(f"  {specs[k]} -> {result}")
    return results


def median_of(results, key):
    values = [v for r in results if "error" not in r for v in np.atleast_1d(r.get(key, []))]
    return statistics.median(values) if values else None


# --- inside a worker ---------------------------------------------------------------------
def rss_bytes():
    """(current RSS, peak RSS) of this process in bytes, from /proc (Linux)."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)


def reset_peak_rss():
    """Make the peak RSS equal the current RSS (Linux >= 4.0), so a later peak is the
    peak of what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def emit(result):
    print(json.dumps(result), flush=True)


# --- data -----------------------------------------------------------------------------------
def cached_matrix(name, make):
    """A matrix built once by `make()` and kept in bench/out (never committed)."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.npz"
    if not path.exists():
        sp.save_npz(path, make())
    return sp.load_npz(path).tocsr()


def movielens_path():
    env = os.environ.get("FASTALS_DATA")
    for folder in ([Path(env) / "ml-100k", Path(env)] if env else []) + [
            BENCH.parent.parent / "shared" / "data" / "ml-100k"]:
        if (folder / "u.data").exists():
            return folder
    return None


# --- report ---------------------------------------------------------------------------------
def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(title, body):
    """Replace (or add) the `## title` section of bench/RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n" \
        "Written by the scripts in bench/; each section is replaced when its script reruns.\n"
    heading = f"## {title}\n"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = f"{heading}\n_{stamp}; {machine()}_\n\n{body.rstrip()}\n\n"
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text.rstrip() + "\n")


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
