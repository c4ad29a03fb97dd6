"""Thread counts and scoped BLAS limits.

May import: threadpoolctl; the CPU-query kernel (:mod:`fastals._kernels._cpu`) only when a
thread count is resolved, so that importing this module loads no compiled kernel.
"""
import contextlib

from threadpoolctl import threadpool_limits


def resolve_threads(num_threads):
    """0 means every thread OpenMP would use; at least 1."""
    if num_threads > 0:
        return num_threads
    from fastals._kernels import _cpu

    return max(1, _cpu.openmp_threads())


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread for the duration of the block only.

    Our kernels run their own OpenMP threads; a threaded BLAS called between them would
    oversubscribe the cores (and spin-wait against them). The limit is undone on exit, so
    it never changes the process for the caller.
    """
    with limited_blas(1):
        yield


@contextlib.contextmanager
def limited_blas(num_threads):
    """Limit BLAS to `num_threads` threads (a resolved count, >= 1) for the block only.

    For the models whose heavy arithmetic is one BLAS/LAPACK call (EASE's dense inverse):
    BLAS may use the threads the caller allowed the model, and no more; the process's own
    setting is restored on exit.
    """
    with threadpool_limits(limits=max(1, int(num_threads)), user_api="blas"):
        yield
