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

from scipy.linalg.cython_blas cimport dgemm, dsyrk, sgemm, ssyrk

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

cdef inline void syrk_lower(int F, int rows, const floating* Y, floating* C) noexcept nogil:
    """C (F x F, column-major, lower triangle) = A A^T for the F x rows column-major A that
    the row-major rows x F block Y is."""
    cdef char* L = b"L"
    cdef char* N = b"N"
    cdef float one_f = 1, zero_f = 0
    cdef double one_d = 1, zero_d = 0
    if floating is float:
        ssyrk(L, N, &F, &rows, &one_f, <float*> Y, &F, &zero_f, C, &F)
    else:
        dsyrk(L, N, &F, &rows, &one_d, <double*> Y, &F, &zero_d, C, &F)



def gram(const floating[:, ::1] Y, double[:, :, ::1] groups, int chunk_rows,
         int num_threads):
    """groups[g, i, j] = sum over group g's rows r of Y[r, i] Y[r, j], for i <= j (the
    upper triangle; the caller sums the groups in order and mirrors). Returns a Status.

    Y's rows are cut into chunks of `chunk_rows` and the chunks into len(groups)
    consecutive runs of (nearly) equal length, both fixed by the shapes alone. A task is
    one group: for each of its chunks one syrk in the dtype of Y (the chunk's rows'
    outer products, half of a gemm's work) into a scratch matrix, added into the group's
    float64 sum, chunk after chunk. Groups are disjoint outputs, so the threads share
    nothing and the sums do not depend on how many there are.
    """
    cdef Py_ssize_t n = Y.shape[0], r0, c, c_lo, c_hi
    cdef Py_ssize_t n_chunks = (n + chunk_rows - 1) // chunk_rows
    cdef Py_ssize_t n_groups = groups.shape[0]
    cdef int F = Y.shape[1], rows, i, j, g
    cdef floating* scratch
    cdef int failed = 0
    if n == 0 or F == 0 or n_groups == 0:
        return OK
    with nogil, parallel(num_threads=num_threads):
        scratch = <floating*> scratch_malloc(<Py_ssize_t> F * F * sizeof(floating))
        try:
            for g in prange(n_groups, schedule="dynamic", chunksize=1):
                if scratch == NULL:
                    failed = 1
                    continue
                c_lo = g * n_chunks // n_groups
                c_hi = (g + 1) * n_chunks // n_groups
                for c in range(c_lo, c_hi):
                    r0 = c * chunk_rows
                    rows = <int> min(<Py_ssize_t> chunk_rows, n - r0)
                    # column-major lower triangle of Y[r0:r0+rows]^T Y[r0:r0+rows]: element
                    # (i, j), i >= j, at j F + i, which is row-major [j, i], the upper one
                    syrk_lower(F, rows, &Y[r0, 0], scratch)
                    for j in range(F):
                        for i in range(j, F):
                            groups[g, j, i] += scratch[<Py_ssize_t> j * F + i]
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
