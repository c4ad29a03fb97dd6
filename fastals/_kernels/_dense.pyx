# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Dense products of whole factor matrices, on the caller's OpenMP threads: the Gram
matrix Y^T Y and the change of basis M <- M Q.

Both split their work into pieces fixed by the shapes alone (never by the thread count),
each computed by one single-threaded BLAS call (scipy's, through scipy.linalg.cython_blas)
and written to its own part of the output, so that results are bit-identical for any
number of threads. The caller limits the BLAS to one thread around the call
(fastals._threads.single_threaded_blas): parallelism comes from the pieces.

Symbols as in fastals/reference/__init__.py: Y (n x F) a factor matrix, row-major; F its
number of factors. BLAS is column-major: a row-major n x F matrix is its F x n transpose.
"""
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free
from libc.string cimport memcpy

from scipy.linalg.cython_blas cimport dgemm, sgemm

from fastals._kernels._common cimport floating
from fastals._kernels._status cimport OK, OUT_OF_MEMORY, Status, scratch_malloc


cdef inline void gemm(char* transa, char* transb, int m, int n, int k, const floating* A,
                      int lda, const floating* B, int ldb, floating beta, floating* C,
                      int ldc) noexcept nogil:
    """C = op(A) op(B) + beta C (column-major; m x n = (m x k)(k x n))."""
    cdef float one_f = 1, beta_f = <float> beta
    cdef double one_d = 1, beta_d = <double> beta
    if floating is float:
        sgemm(transa, transb, &m, &n, &k, &one_f, <float*> A, &lda, <float*> B, &ldb,
              &beta_f, C, &ldc)
    else:
        dgemm(transa, transb, &m, &n, &k, &one_d, <double*> A, &lda, <double*> B, &ldb,
              &beta_d, C, &ldc)


def gram(const floating[:, ::1] Y, double[:, ::1] out, int panel, int chunk_rows,
         int num_threads):
    """out[i, j] = sum_r Y[r, i] Y[r, j] for i <= j (the upper triangle; the lower one is
    left for the caller to mirror). Returns a Status.

    The tasks are the column panels [c0, c0 + panel) of the upper triangle: panel c0 needs
    rows 0 .. c0 + panel of its columns, one product Y[:, :c1]^T Y[:, c0:c1] summed over
    chunks of `chunk_rows` rows of Y, each chunk's product in the dtype of Y (one gemm)
    and added into `out` in float64, chunk after chunk. Panels are disjoint columns of
    `out`; the largest (last) go first.
    """
    cdef Py_ssize_t n = Y.shape[0], r0, chunk
    cdef Py_ssize_t n_chunks = (n + chunk_rows - 1) // chunk_rows
    cdef int F = Y.shape[1]
    cdef int n_panels = (F + panel - 1) // panel
    cdef int p, c0, c1, w, rows, i, j
    cdef floating* scratch
    cdef char* N = b"N"
    cdef char* T = b"T"
    cdef int failed = 0
    for i in range(F):
        for j in range(F):
            out[i, j] = 0
    if n == 0 or F == 0:
        return OK
    with nogil, parallel(num_threads=num_threads):
        scratch = <floating*> scratch_malloc(<Py_ssize_t> F * panel * sizeof(floating))
        try:
            for p in prange(n_panels, schedule="dynamic", chunksize=1):
                if scratch == NULL:
                    failed = 1
                    continue
                c0 = (n_panels - 1 - p) * panel
                c1 = min(c0 + panel, F)
                w = c1 - c0
                for chunk in range(n_chunks):
                    r0 = chunk * chunk_rows
                    rows = <int> min(<Py_ssize_t> chunk_rows, n - r0)
                    # scratch (c1 x w, column-major) = Y[r0:r0+rows, :c1]^T Y[r0:r0+rows, c0:c1]
                    gemm(N, T, c1, w, rows, &Y[r0, 0], F, &Y[r0, c0], F, 0, scratch, c1)
                    for j in range(w):
                        for i in range(c1):
                            out[i, c0 + j] += scratch[<Py_ssize_t> j * c1 + i]
        finally:
            free(scratch)
    return OUT_OF_MEMORY if failed else OK


def rotate(floating[:, ::1] M, const floating[:, ::1] Q, int chunk_rows, int num_threads):
    """M <- M Q in place (Q: F x F), chunk of `chunk_rows` rows by chunk (one gemm each,
    into per-thread scratch, then copied back). Returns a Status. The scratch is allocated
    once to check before any row changes: OUT_OF_MEMORY from that check leaves M as it was.
    """
    cdef Py_ssize_t n = M.shape[0], n_chunks, c, r0
    cdef int F = M.shape[1], rows
    cdef floating* scratch
    cdef char* N = b"N"
    cdef int failed = 0
    if n == 0 or F == 0:
        return OK
    n_chunks = (n + chunk_rows - 1) // chunk_rows
    scratch = <floating*> scratch_malloc(<Py_ssize_t> F * chunk_rows * sizeof(floating))
    if scratch == NULL:
        return OUT_OF_MEMORY
    free(scratch)
    with nogil, parallel(num_threads=num_threads):
        scratch = <floating*> scratch_malloc(<Py_ssize_t> F * chunk_rows * sizeof(floating))
        try:
            for c in prange(n_chunks, schedule="dynamic", chunksize=1):
                if scratch == NULL:
                    failed = 1
                    continue
                r0 = c * chunk_rows
                rows = <int> min(<Py_ssize_t> chunk_rows, n - r0)
                # column-major: (M_c Q)^T = Q^T M_c^T, and row-major Q is column-major Q^T
                gemm(N, N, F, rows, F, &Q[0, 0], F, &M[r0, 0], F, 0, scratch, F)
                memcpy(&M[r0, 0], scratch, <Py_ssize_t> rows * F * sizeof(floating))
        finally:
            free(scratch)
    return OUT_OF_MEMORY if failed else OK
