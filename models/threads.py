"""One OpenMP thread for the small fits and predictions of scikit-learn's HistGradientBoosting.

HistGradientBoosting runs every fit and predict on one OpenMP thread per core. On tables of a few
thousand rows the threads' barriers cost more than the trees, and when another process holds a
core each barrier waits for a thread that is not running: on the 2-core machine, with one CPU hog,
`ctwin containers advise` took 112–162 s, and 3.1 s with `OMP_NUM_THREADS=1`. Only OpenMP is
limited: these models make no BLAS calls, and a BLAS limit is process-wide (another thread's
restore could leave it lowered), where OpenMP's thread count belongs to the calling thread.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

__all__ = ["one_thread"]

_controller: Any = None


def _openmp_controller() -> Any:
    """threadpoolctl's view of the loaded OpenMP runtimes, found once (a scan of the loaded
    libraries); not kept while none is loaded yet, so a later call still finds scikit-learn's."""
    global _controller
    if _controller is not None:
        return _controller
    from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

    found = ThreadpoolController().select(user_api="openmp")
    if found.lib_controllers:
        _controller = found
    return found


def one_thread() -> AbstractContextManager[Any]:
    """A context in which this thread's OpenMP regions run on one thread (restored on exit)."""
    return _openmp_controller().limit(limits=1)
