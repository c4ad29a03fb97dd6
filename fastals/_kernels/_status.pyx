# cython: boundscheck=False, wraparound=False
"""The kernels' status codes, declared once in ``_status.pxd`` and exported from here to Python
as the IntEnum :class:`Status`; and the allocator of the kernels' scratch memory.

Nothing here validates or raises: :func:`fastals._kernels.status.raise_for_status` turns a
status into an exception.
"""
from libc.stdlib cimport calloc, malloc

cdef bint out_of_memory = False


def simulate_out_of_memory(bint on):
    """Test hook: while `on`, every scratch allocation of every kernel fails (returns NULL),
    so that each kernel's OUT_OF_MEMORY path can be checked. Nothing but tests calls it;
    do not call it while a kernel runs."""
    global out_of_memory
    out_of_memory = on


cdef void* scratch_malloc(size_t size) noexcept nogil:
    return NULL if out_of_memory else malloc(size)


cdef void* scratch_calloc(size_t count, size_t size) noexcept nogil:
    return NULL if out_of_memory else calloc(count, size)
