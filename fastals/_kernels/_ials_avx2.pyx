# iALS++ subspace kernels compiled for the avx2 instruction set; the code is in _ials.pxi.
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
include "_ials.pxi"
