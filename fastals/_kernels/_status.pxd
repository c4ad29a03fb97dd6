# How every kernel reports failure: the one status type, and the scratch allocator whose
# failure is the OUT_OF_MEMORY status. The codes are defined here and nowhere else.
#
# A kernel that can fail returns a Status for the whole call, or writes one per row into a
# signed char (int8) array the caller provides; OK is 0, so `status.any()` tests a per-row
# array. Kernels that cannot fail (no scratch, no data-dependent failure) return their result.
# The compiled fastals._kernels._status exports the enum to Python (the IntEnum `Status`),
# and fastals._kernels.status turns a status into the exception the user sees. Every kernel
# module cimports this one; it cimports only libc.

cpdef enum Status:
    OK = 0
    # a row's normal equations are singular or indefinite (a pivot or curvature <= 0)
    NOT_POSITIVE_DEFINITE = 1
    # the kernel's scratch memory could not be allocated (nothing was computed for the rows
    # reported, or for the whole call)
    OUT_OF_MEMORY = 2
    # a row's system overflows the float dtype (an infinite or NaN pivot or residual)
    OVERFLOW = 3
    # an index outside the range the kernel was given (a caller's bug: the Python layer
    # validates indices before the call)
    INDEX_OUT_OF_RANGE = 4

# Scratch memory of the kernels: malloc / calloc, except while a test simulates running out
# of memory (fastals._kernels._status.simulate_out_of_memory), when they return NULL.
cdef void* scratch_malloc(size_t size) noexcept nogil
cdef void* scratch_calloc(size_t count, size_t size) noexcept nogil
