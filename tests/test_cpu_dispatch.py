"""The kernel builds per instruction set: FASTALS_ISA selects each one the build carries and it
gives the generic build's answers; the generic builds hold nothing beyond baseline x86-64; a
CPU without AVX2 (or whose OS does not save the YMM registers) runs the generic kernels.

Each job runs in a fresh interpreter (the choice of build is made once per process), against
the fastals this test imports (the source tree's build, or an installed wheel). The emulated
CPUs need qemu-user (`qemu-x86_64`), the instruction check needs binutils' `objdump`; each
test is skipped, saying so, where its tool is missing.
"""
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastals
from fastals._kernels import _cpu
from fastals._kernels.dispatch import available_isas

FAMILIES = ("_als", "_explicit", "_ials", "_retrieval", "_sgd", "_topn")
ISAS = ("generic", "avx2", "avx512")
X86_64 = platform.machine().lower() in ("x86_64", "amd64")

# Every family through the models: fits, top-N and similar items, predictions (float64, so
# that the builds agree to rounding). Prints which build each family loaded, and the results.
JOB = r"""
import json
import numpy as np
import scipy.sparse as sp
import fastals
from fastals._kernels import dispatch

rng = np.random.default_rng(7)
counts = sp.random(60, 45, density=0.2, format="csr", random_state=rng,
                   data_rvs=lambda n: rng.integers(1, 6, n).astype(np.float64))
out = {"file": fastals.__file__,
       "builds": {f: dispatch.kernels(f).__name__.rpartition("_")[2] for f in %(families)r}}
for solver in ("cg", "cholesky", "ials++"):
    m = fastals.ImplicitALS(factors=6, iterations=3, solver=solver, dtype=np.float64,
                            random_state=0, num_threads=2).fit(counts, show_progress=False)
    ids, scores = m.recommend(np.arange(60), counts, N=5)
    similar, _ = m.similar_items(np.arange(45), N=4)
    out[solver] = {"factors": m.item_factors.tolist(), "recommend": ids.tolist(),
                   "scores": scores.tolist(), "similar": similar.tolist(),
                   "recommend_all": m.recommend_all(counts, N=5)[0].tolist()}
users, items = np.repeat(np.arange(60), 3), rng.integers(0, 45, 180)
for name, model in (("explicit", fastals.ExplicitALS(factors=4, iterations=3)),
                    ("sgd", fastals.SGDMatrixFactorization(factors=8, epochs=3))):
    model.dtype, model.random_state, model.num_threads = np.float64, 0, 2
    model.fit(counts, show_progress=False)
    out[name] = model.predict(users, items).tolist()
print(json.dumps(out))
""" % {"families": FAMILIES}


def run_job(isa=None, emulate=None):
    """Run JOB in a fresh interpreter (FASTALS_ISA=`isa`; under qemu-x86_64 -cpu `emulate`)."""
    env = dict(os.environ)
    env.pop("FASTALS_ISA", None)
    if isa is not None:
        env["FASTALS_ISA"] = isa
    command = [sys.executable, "-c", JOB]
    if emulate is not None:
        # a core type forced for the host's OpenBLAS need not suit the emulated CPU
        env.pop("OPENBLAS_CORETYPE", None)
        command = [shutil.which("qemu-x86_64"), "-cpu", emulate] + command
    # run beside the package this test imported, so that the job imports it too
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          cwd=Path(fastals.__file__).parents[1])
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_same_answers(got, want):
    """The builds differ only by rounding (FMA, vector widths): factors and scores agree
    to 1e-6 relative, the top-N lists and the neighbours are the same."""
    for solver in ("cg", "cholesky", "ials++"):
        for key in ("factors", "scores"):
            np.testing.assert_allclose(got[solver][key], want[solver][key], rtol=1e-6,
                                       atol=1e-9, err_msg=f"{solver} {key}")
        for key in ("recommend", "similar"):
            assert got[solver][key] == want[solver][key], f"{solver} {key}"
    for name in ("explicit", "sgd"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.fixture(scope="module")
def generic_answers():
    answers = run_job("generic")
    assert set(answers["builds"].values()) == {"generic"}
    return answers


def built_isas():
    """The instruction sets of which this build carries every family."""
    return [isa for isa in ISAS if all(importlib.util.find_spec(f"fastals._kernels.{f}_{isa}")
                                       for f in FAMILIES)]


def test_the_build_carries_every_variant_this_machine_can_compile():
    # x86-64 builds carry all three (setup.py drops a variant only if the compiler cannot
    # make it); elsewhere, and with MSVC, only the generic one is built
    x86_variants = X86_64 and sys.platform != "win32"
    assert built_isas() == (list(ISAS) if x86_variants else ["generic"])


@pytest.mark.parametrize("isa", ISAS)
def test_fastals_isa_selects_that_build_and_it_answers_as_the_generic_one(isa,
                                                                          generic_answers):
    if isa not in built_isas():
        pytest.skip(f"this build has no {isa} kernels")
    if isa not in _cpu.supported_isas():
        pytest.skip(f"this CPU cannot run the {isa} kernels")
    got = run_job(isa)
    assert got["file"] == fastals.__file__
    assert got["builds"] == {family: isa for family in FAMILIES}
    assert_same_answers(got, generic_answers)


def test_without_fastals_isa_the_best_build_the_cpu_runs_is_chosen():
    best = available_isas("_als")[0]
    assert best == next(isa for isa in _cpu.supported_isas() if isa in built_isas())
    assert set(run_job()["builds"].values()) == {best}


# --- a CPU without AVX2 ------------------------------------------------------------------------
# qemu-user's CPU models (its TCG has no AVX-512). Nehalem: no AVX at all (x86-64-v2, which
# numpy's own baseline needs). SandyBridge: AVX without AVX2. "-xsave": CPUID says AVX2 and FMA
# but the OS-enabled-XSAVE bit is clear and XCR0 has no YMM state, as under an OS (or a
# hypervisor) that does not save the YMM registers. Haswell: AVX2, so the emulator is shown
# to run the avx2 kernels too.
EMULATED = [("Nehalem", "generic"), ("SandyBridge", "generic"),
            ("Haswell-noTSX,-xsave", "generic"), ("Haswell-noTSX", "avx2")]


@pytest.mark.parametrize("cpu, expected", EMULATED, ids=[c for c, _ in EMULATED])
def test_an_older_cpu_gets_the_kernels_it_can_run(cpu, expected, generic_answers):
    if not (X86_64 and sys.platform.startswith("linux")):
        pytest.skip("emulates x86-64 CPUs on x86-64 Linux")
    if shutil.which("qemu-x86_64") is None:
        pytest.skip("qemu-x86_64 not found (Debian: apt-get install qemu-user)")
    if expected not in built_isas():
        pytest.skip(f"this build has no {expected} kernels")
    got = run_job(emulate=cpu)
    assert got["builds"] == {family: expected for family in FAMILIES}
    assert_same_answers(got, generic_answers)


# --- the generic builds are baseline x86-64 ------------------------------------------------------
# Instructions beyond baseline x86-64 (SSE2), by extension; any VEX/EVEX mnemonic (v...,
# AVX and later), any ymm/zmm/mask register is reported too.
BEYOND_BASELINE = {
    "SSE3": "addsubpd addsubps haddpd haddps hsubpd hsubps lddqu movddup movshdup movsldup "
            "fisttp monitor mwait",
    "SSSE3": "pabsb pabsw pabsd palignr phaddw phaddd phaddsw phsubw phsubd phsubsw "
             "pmaddubsw pmulhrsw pshufb psignb psignw psignd",
    "SSE4.1": "blendpd blendps blendvpd blendvps dppd dpps extractps insertps movntdqa "
              "mpsadbw packusdw pblendvb pblendw pcmpeqq pextrb pextrd pextrq phminposuw "
              "pinsrb pinsrd pinsrq pmaxsb pmaxsd pmaxud pmaxuw pminsb pminsd pminud pminuw "
              "pmovsxbw pmovsxbd pmovsxbq pmovsxwd pmovsxwq pmovsxdq pmovzxbw pmovzxbd "
              "pmovzxbq pmovzxwd pmovzxwq pmovzxdq pmuldq pmulld ptest roundpd roundps "
              "roundsd roundss",
    "SSE4.2": "pcmpestri pcmpestrm pcmpistri pcmpistrm pcmpgtq crc32",
    "x86-64-v2/v3 scalar": "popcnt lzcnt tzcnt movbe cmpxchg16b lahf sahf andn bextr blsi "
                           "blsmsk blsr bzhi mulx pdep pext rorx sarx shlx shrx adcx adox",
    "other": "aesenc aesenclast aesdec aesdeclast aesimc aeskeygenassist pclmulqdq "
             "sha1rnds4 sha1nexte sha1msg1 sha1msg2 sha256rnds2 sha256msg1 sha256msg2 "
             "prefetchw prefetchwt1 rdrand rdseed xgetbv xsave xsaveopt xrstor",
}
EXTENSION_OF = {m: ext for ext, names in BEYOND_BASELINE.items() for m in names.split()}
PREFIXES = {"lock", "rep", "repz", "repnz", "repe", "repne", "data16", "data32", "addr32",
            "cs", "ds", "es", "fs", "gs", "ss", "notrack", "bnd"}
WIDE_REGISTER = re.compile(r"\b([yz]mm\d+|k[0-7])\b")
INSTRUCTION = re.compile(r"^\s*[0-9a-f]+:\s+(\S.*)$")  # "  4f2:\tmov ..." (no raw bytes)
# the CPU detection itself reads XCR0 (XGETBV), after CPUID said the OS enabled XSAVE
ALLOWED = {"_cpu": {"xgetbv"}}


def generic_modules():
    folder = Path(fastals.__file__).parent / "_kernels"
    for path in sorted(folder.iterdir()):
        stem = path.name.split(".")[0]
        if path.suffix in (".so", ".pyd") and not stem.endswith(("_avx2", "_avx512")):
            yield stem, path


def disassembly(path):
    return subprocess.run(["objdump", "-d", "-M", "intel", "--no-show-raw-insn", str(path)],
                          capture_output=True, text=True, check=True).stdout


def instructions(listing):
    """(mnemonic, operands) of each instruction in an objdump listing, prefixes left out."""
    for line in listing.splitlines():
        match = INSTRUCTION.match(line)
        if not match:
            continue
        words = re.sub(r"<[^>]*>|#.*", "", match.group(1)).split()
        while words and words[0] in PREFIXES:
            words = words[1:]
        if words and words[0] != "(bad)":
            yield words[0], " ".join(words[1:])


def beyond_baseline(stem, listing):
    """The instructions in `listing` (of module `stem`) beyond baseline x86-64, counted."""
    found = {}
    for mnemonic, operands in instructions(listing):
        if mnemonic in ALLOWED.get(stem, ()):
            continue
        if mnemonic in EXTENSION_OF:
            reason = EXTENSION_OF[mnemonic]
        elif mnemonic.startswith("v") and mnemonic not in ("verr", "verw"):
            reason = "AVX (VEX/EVEX)"
        elif mnemonic.startswith("k") or WIDE_REGISTER.search(operands):
            reason = "AVX/AVX-512 registers"
        else:
            continue
        key = f"{mnemonic} ({reason})"
        found[key] = found.get(key, 0) + 1
    return found


@pytest.mark.skipif(not X86_64, reason="the baseline check is for x86-64 builds")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not found")
def test_generic_builds_hold_no_instruction_beyond_baseline_x86_64():
    modules = dict(generic_modules())
    assert {f"{f}_generic" for f in FAMILIES} <= set(modules), sorted(modules)
    offending = {}
    for stem, path in modules.items():
        listing = disassembly(path)
        assert sum(1 for _ in instructions(listing)) > 1000, f"{path}: nothing disassembled"
        if found := beyond_baseline(stem, listing):
            offending[stem] = found
    assert not offending, offending


@pytest.mark.skipif(not X86_64, reason="the baseline check is for x86-64 builds")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not found")
def test_the_instruction_check_finds_the_vector_builds_instructions():
    for isa, register in (("avx2", "ymm"), ("avx512", "zmm")):
        if isa not in built_isas():
            continue
        listing = disassembly(importlib.util.find_spec(f"fastals._kernels._als_{isa}").origin)
        found = beyond_baseline(f"_als_{isa}", listing)
        assert any(key.startswith("vfmadd") for key in found), found
        assert re.search(rf"\b{register}\d+\b", listing), f"no {register} in the {isa} build"
