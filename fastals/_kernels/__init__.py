"""Compiled kernels: nogil arithmetic over typed arrays, no validation (see fastals._validation)."""
