"""Pick, for each kernel family, the build for the best instruction set this CPU runs.

Families built per instruction set (``_als_generic``, ``_als_avx2``, ``_als_avx512``, ...)
are loaded through :func:`kernels`. ``FASTALS_ISA=generic|avx2|avx512`` forces a choice
(it must be supported by the CPU and present in the build), which is how the tests check
every build against the reference.

Part of the kernel room (its Python side); imports the standard library and the compiled
``_cpu`` only.
"""
import importlib
import os

from fastals._kernels import _cpu

_ORDER = ("avx512", "avx2", "generic")
_cache = {}


def available_isas(family):
    """The builds of `family` that exist and that this CPU can run, best first."""
    supported = set(_cpu.supported_isas())
    found = []
    for isa in _ORDER:
        if isa not in supported:
            continue
        try:
            importlib.import_module(f"fastals._kernels.{family}_{isa}")
        except ImportError:
            continue
        found.append(isa)
    return found


def kernels(family, isa=None):
    """The kernel module of `family` for `isa` (default: FASTALS_ISA, else the best one)."""
    key = (family, isa)
    if key in _cache:
        return _cache[key]
    isas = available_isas(family)
    if not isas:
        raise ImportError(f"no build of the fastals kernels {family!r} was found; "
                          "was the package compiled (pip install .)?")
    wanted = isa or os.environ.get("FASTALS_ISA", "").strip().lower() or None
    if wanted is not None and wanted not in isas:
        raise ImportError(f"FASTALS_ISA={wanted!r} is not usable here; available: {isas}")
    module = importlib.import_module(f"fastals._kernels.{family}_{wanted or isas[0]}")
    _cache[key] = module
    return module
