# cython: boundscheck=False, wraparound=False
"""What the running CPU supports, for choosing among the kernel builds."""

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
