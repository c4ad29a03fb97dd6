# Implicit ALS kernels compiled for the avx512 instruction set; the code is in _als.pxi.
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
include "_als.pxi"
