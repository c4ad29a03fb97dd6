"""Thread counts and scoped BLAS limits."""
import contextlib

from threadpoolctl import threadpool_limits

from fastals._kernels import _cpu


def resolve_threads(num_threads):
    """0 means every thread OpenMP would use; at least 1."""
    return num_threads if num_threads > 0 else max(1, _cpu.openmp_threads())


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread for the duration of the block only.

    Our kernels run their own OpenMP threads; a threaded BLAS called between them would
    oversubscribe the cores (and spin-wait against them). The limit is undone on exit, so
    it never changes the process for the caller.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield
