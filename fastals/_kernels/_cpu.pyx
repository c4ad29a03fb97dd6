# cython: boundscheck=False, wraparound=False
"""What the running CPU supports, for choosing among the kernel builds.

A build is usable when the CPU has its instructions and the OS saves their registers. GCC's
and clang's ``__builtin_cpu_supports`` see to both: AVX2 and FMA count only when CPUID's
OSXSAVE bit is set and XCR0 (read with XGETBV) enables the SSE and YMM state, AVX-512 only
when XCR0 also enables the opmask and ZMM state. tests/test_cpu_dispatch.py runs the kernels
on emulated CPUs without AVX2, and with AVX2 but no OS support for it.
"""

cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    static int fastals_has_avx2(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    static int fastals_has_avx512(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("fma");
    }
    #else
    static int fastals_has_avx2(void) { return 0; }
    static int fastals_has_avx512(void) { return 0; }
    #endif
    #ifdef _OPENMP
    #include <omp.h>
    static int fastals_openmp_threads(void) { return omp_get_max_threads(); }
    #else
    static int fastals_openmp_threads(void) { return 0; }
    #endif
    """
    int fastals_has_avx2() nogil
    int fastals_has_avx512() nogil
    int fastals_openmp_threads() nogil


def supported_isas():
    """Instruction sets the CPU can run, best first (always ends with "generic")."""
    isas = []
    if fastals_has_avx512():
        isas.append("avx512")
    if fastals_has_avx2():
        isas.append("avx2")
    isas.append("generic")
    return isas


def openmp_threads():
    """omp_get_max_threads() of the kernels' OpenMP runtime, or 0 if built without OpenMP."""
    return fastals_openmp_threads()
