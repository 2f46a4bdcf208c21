"""models.threads: small HistGradientBoosting fits run on one OpenMP thread, and only there."""

from __future__ import annotations

import threading

import sklearn.ensemble  # noqa: F401  # loads scikit-learn's OpenMP runtime, as every caller has
from threadpoolctl import threadpool_info, threadpool_limits

from models.threads import one_thread


def openmp_threads() -> set[int]:
    """The thread count of every loaded OpenMP runtime, as the calling thread sees it."""
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"}


def test_one_thread_limits_openmp_and_restores_the_callers_setting() -> None:
    with threadpool_limits(limits=4, user_api="openmp"):  # more than one, whatever the machine's cores
        assert openmp_threads() == {4}
        with one_thread():
            assert openmp_threads() == {1}
        assert openmp_threads() == {4}


def test_blas_is_left_alone() -> None:
    """BLAS limits are process-wide: a fit on one thread must not lower them for the others."""
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with one_thread():
        assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == blas


def test_the_limit_is_the_calling_threads_own() -> None:
    """A server fits in a worker thread while others run: OpenMP's count is per thread, so the
    limit in one thread leaves another thread's OpenMP regions as they were."""
    inside = threading.Event()
    done = threading.Event()
    seen: dict[str, set[int]] = {}

    def fit_like() -> None:
        with threadpool_limits(limits=4, user_api="openmp"), one_thread():
            seen["worker"] = openmp_threads()
            inside.set()
            done.wait(10)

    with threadpool_limits(limits=3, user_api="openmp"):
        worker = threading.Thread(target=fit_like)
        worker.start()
        assert inside.wait(10)
        seen["main"] = openmp_threads()
        done.set()
        worker.join(10)
    assert seen == {"worker": {1}, "main": {3}}
