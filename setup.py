"""Build the Cython kernels of fastals.

Every ``fastals/_kernels/*.pyx`` is one extension module. Kernel modules whose arithmetic
profits from wide vectors are written once as ``name.pxi`` and built three times from tiny
stubs (``name_generic.pyx``, ``name_avx2.pyx``, ``name_avx512.pyx``), each with its own
instruction-set flags; ``fastals._kernels.dispatch`` picks the best one the running CPU
supports. So a wheel runs on any x86-64 yet uses AVX2/AVX-512 where present: on x86-64
every module is compiled for baseline x86-64 (``-march=x86-64``: SSE2, nothing later) plus
its variant's flags, whatever the compiler's or Python's default flags would choose.

Optimised builds carry no debug information (Python's own CFLAGS say ``-g``) and are
stripped of symbols at link time on Linux: the modules are about a fifth of the size.

Environment switches for the builder:

* ``FASTALS_NATIVE=1``   add ``-march=native`` to every module (not portable; off by default).
* ``FASTALS_NO_OPENMP=1`` build without OpenMP (the kernels then run on one thread).
* ``FASTALS_DEBUG=1``    ``-O0 -g`` and no vector variants (for debuggers).
* ``FASTALS_SYMBOLS=1``  optimised, but keep symbols and debug information (for profilers).
* ``FASTALS_SANITIZE=address`` build every variant with AddressSanitizer (``-O1 -g``);
  run with ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)`` (see .ci/sanitize).
* ``LIBOMP_PREFIX=DIR``  (macOS) where libomp is installed, for Apple clang, which has no
  OpenMP runtime of its own; default: Homebrew's ``/opt/homebrew/opt/libomp`` or
  ``/usr/local/opt/libomp``.

Off x86 (aarch64, Apple silicon) only the generic builds are made.
"""
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = Path("fastals") / "_kernels"
# every module built on x86-64 starts from the baseline instruction set
BASELINE_X86_64 = ["-march=x86-64"]
ISA_FLAGS = {
    "generic": [],
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mfma",
               "-mprefer-vector-width=512"],
}
# Float flags: allow reassociation so dot products vectorise, but keep NaN/inf semantics
# (no -ffinite-math-only) because the Python layer checks results for non-finite values.
GCC_MATH = ["-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros"]


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _libomp_prefixes():
    """Where libomp may be installed on macOS (LIBOMP_PREFIX first, then Homebrew's)."""
    prefixes = [os.environ.get("LIBOMP_PREFIX", ""), "/opt/homebrew/opt/libomp",
                "/usr/local/opt/libomp"]
    return [p for p in prefixes if p and (Path(p) / "include" / "omp.h").exists()]


class BuildExt(build_ext):
    """Choose compiler flags once the compiler is known."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:  # compile the modules on every core
            self.parallel = os.cpu_count() or 1

    def _compiles(self, flags, code="int main(void){return 0;}\n", link_flags=None):
        """Whether `code` compiles with `flags` and links with `link_flags` (default: `flags`)."""
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "probe.c"
            src.write_text(code)
            try:
                objs = self.compiler.compile([str(src)], output_dir=tmp, extra_postargs=flags)
                self.compiler.link_executable(
                    objs, str(Path(tmp) / "probe"),
                    extra_postargs=flags if link_flags is None else link_flags)
            except Exception:
                return False
        return True

    def _openmp(self):
        """(compile flags, link flags) that build and link an OpenMP program, or None."""
        candidates = [(["-fopenmp"], ["-fopenmp"])]
        if sys.platform == "darwin":  # Apple clang: the preprocessor's OpenMP, and libomp
            candidates += [(["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                            [f"-L{prefix}/lib", "-lomp"]) for prefix in _libomp_prefixes()]
        for compile_flags, link_flags in candidates:
            if self._compiles(compile_flags, _OPENMP_PROBE, link_flags):
                return compile_flags, link_flags
        return None

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        debug = _flag("FASTALS_DEBUG")
        sanitize = os.environ.get("FASTALS_SANITIZE", "").strip()
        link = []
        if msvc:
            base = ["/O2"]
        else:
            if debug:
                base = ["-O0", "-g"]
            elif sanitize:  # keep the vector builds: they are what users run
                base = ["-O1", "-g", *GCC_MATH, f"-fsanitize={sanitize}",
                        "-fno-omit-frame-pointer"]
                link = [f"-fsanitize={sanitize}"]
            elif _flag("FASTALS_SYMBOLS"):
                base = ["-O3", "-g", *GCC_MATH]
            else:  # a release build
                base = ["-O3", "-g0", *GCC_MATH]
                link = ["-s"] if sys.platform.startswith("linux") else []
            if _flag("FASTALS_NATIVE"):
                base.append("-march=native")
        openmp = None
        if not _flag("FASTALS_NO_OPENMP"):
            openmp = (["/openmp"], []) if msvc else self._openmp()
        if openmp is None:
            warnings.warn("fastals: the compiler has no OpenMP support; building serial "
                          "kernels (num_threads will have no effect).")
            openmp = [], []
        machine = platform.machine().lower()
        x86 = machine in ("x86_64", "amd64", "i686", "x86")
        # probed rather than assumed: a cross-compile (macOS arm64 on x86) must not get it
        baseline = (BASELINE_X86_64 if machine in ("x86_64", "amd64") and not msvc
                    and not _flag("FASTALS_NATIVE") and self._compiles(BASELINE_X86_64)
                    else [])
        usable = {"generic"}
        if x86 and not msvc and not debug:
            usable |= {isa for isa in ("avx2", "avx512") if self._compiles(ISA_FLAGS[isa])}
        kept = [ext for ext in self.extensions if ext.isa in usable]
        for ext in kept:
            ext.extra_compile_args = (base + openmp[0] + baseline
                                      + ([] if msvc else ISA_FLAGS[ext.isa]))
            ext.extra_link_args = openmp[1] + link
        _cythonize(kept)
        self.extensions[:] = kept
        super().build_extensions()


_OPENMP_PROBE = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"


def _cythonize(exts):
    """Translate the .pyx sources of `exts` to C (where out of date), in place. Done when the
    modules are built, not when this file is read: making an sdist runs no Cython, and a
    build translates only the variants it compiles."""
    from Cython.Build import cythonize

    translated = {e.name: e for e in cythonize(
        exts, language_level=3, compiler_directives={"embedsignature": True},
        include_path=[str(KERNELS)], nthreads=os.cpu_count() or 1)}
    for ext in exts:
        ext.sources, ext.depends = translated[ext.name].sources, translated[ext.name].depends


def extensions():
    exts = []
    for pyx in sorted(KERNELS.glob("*.pyx")):
        name = ".".join(pyx.with_suffix("").parts)
        ext = Extension(name, [str(pyx)], include_dirs=[np.get_include(), str(KERNELS)],
                        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
        ext.isa = next((isa for isa in ISA_FLAGS if pyx.stem.endswith("_" + isa)), "generic")
        exts.append(ext)
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
