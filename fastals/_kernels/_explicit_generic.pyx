# Explicit-ratings kernels compiled for the generic instruction set; the code is in _explicit.pxi.
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
include "_explicit.pxi"
