"""The kernel room: compiled nogil arithmetic over typed arrays, and its small Python side.

Compiled (``*.pyx``, ``*.pxi``, ``*.pxd``): the kernels trust their arguments (bounds checks
are off; callers validate first, see fastals._validation) and report failure only by a
status (``_status.pxd``). Python: ``dispatch`` (which instruction-set build to load),
``status`` (a status into the exception the user sees) and ``checked`` (the kernels that
trust model-built arrays such as SGD block schedules, behind the checks of those arrays).
Imports numpy and fastals.exceptions only; nothing here imports the models.

The compiled modules cimport only libc, ``cython.parallel`` (OpenMP), numpy's headers and
this room's own ``.pxd`` / ``.h`` files (``_common``: fused types and inner loops,
``_status``: the status type and scratch allocator, ``_heap``: the bounded heap,
``microkernels.h``: register tiles, ``sync.h``: OpenMP locks); each family's ``.pxi`` is
included by its per-ISA ``.pyx`` stubs. The mathematics in their headers uses the symbols
of :mod:`fastals.reference`.
"""
