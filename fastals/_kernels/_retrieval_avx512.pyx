# All-users top-N kernels compiled for the avx512 instruction set; the code is in _retrieval.pxi.
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
include "_retrieval.pxi"
