"""Smoke test of an installed fastals, run from outside the source tree.

Checks that the package imported is the installed one (in this environment's
site-packages), that every compiled module loads, that the kernels run on OpenMP threads with
the runtime the wheel carries (its fastals.libs/ folder, where auditwheel put it), and that a
small fit recommends what it should. Prints one line per check.
"""
import importlib
import importlib.machinery
import pkgutil
import sys
import sysconfig
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import fastals
from fastals._kernels import _cpu, dispatch

site = Path(sysconfig.get_paths()["platlib"]).resolve()
package = Path(fastals.__file__).resolve().parent
assert package.parent == site, f"fastals was imported from {package}, not from {site}"
print(f"fastals {fastals.__version__} from {package}")

folder = package / "_kernels"
compiled = sorted(m.name for m in pkgutil.iter_modules([str(folder)])
                  if any((folder / (m.name + suffix)).exists()
                         for suffix in importlib.machinery.EXTENSION_SUFFIXES))
for name in compiled:
    importlib.import_module(f"fastals._kernels.{name}")
assert "_cpu" in compiled and "_als_generic" in compiled, compiled
print(f"{len(compiled)} compiled modules load: {' '.join(compiled)}")
print(f"CPU runs {_cpu.supported_isas()}; chosen builds: "
      f"{ {f: dispatch.kernels(f).__name__.rpartition('.')[2] for f in ('_als', '_topn')} }")

threads = _cpu.openmp_threads()
assert threads > 0, "the kernels were built without OpenMP"
runtime = "?"
if sys.platform.startswith("linux"):
    maps = Path("/proc/self/maps").read_text().splitlines()
    loaded = sorted({line.split()[-1] for line in maps if "gomp" in line.split()[-1]})
    carried = site / "fastals.libs"
    if carried.is_dir():  # a repaired wheel: its own copy of the runtime, not the system's
        assert loaded and all(Path(p).parent == carried for p in loaded), loaded
    runtime = " ".join(loaded)
print(f"OpenMP: {threads} threads, runtime {runtime}")

n = 24  # checkerboard: users like the items of their own parity; the diagonal is held out
u, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
likes = sp.csr_matrix((((u + i) % 2 == 0) & (u != i)).astype(np.float32))
model = fastals.ImplicitALS(factors=8, iterations=10, random_state=0).fit(likes,
                                                                          show_progress=False)
ids, scores = model.recommend(np.arange(n), likes, N=3)
assert np.isfinite(scores).all() and (np.diff(scores, axis=1) <= 0).all(), scores
assert not likes[np.arange(n)[:, None], ids].toarray().any(), "a liked item was recommended"
first = (ids[:, 0] == np.arange(n)).mean()
assert first >= 0.75, f"the held-out item came first for only {first:.0%} of the users"
print(f"ImplicitALS on a checkerboard ranks the held-out item first for {first:.0%} of users")
