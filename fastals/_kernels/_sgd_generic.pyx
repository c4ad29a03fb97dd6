# SGD kernels compiled for the generic instruction set; the code is in _sgd.pxi.
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
include "_sgd.pxi"
