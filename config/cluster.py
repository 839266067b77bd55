"""The one place mashlab gets its Dask client: a named scheduler, a local cluster for `--jobs N`, or none.

Ingest (separate, analyse), render and score hand their per-item work to
:func:`each_result`, which runs it in this process when there is no client
and on the cluster's workers otherwise; the callers keep every database write.
`MASHLAB_DASK_SCHEDULER` (settings, else the environment) names a running
scheduler (``tcp://host:8786``); its workers need the same code, MEDIA_ROOT,
MASHLAB_DATA_DIR and MODEL_PATH at the same paths (shared storage). Without
it, ``jobs > 1`` starts a `LocalCluster` of that many one-thread worker
processes for the length of the block. Worker-side functions live in modules
free of Django (generation.scaleout, scoring.scaleout, generation.ingest), so
a worker never needs the ORM. Importing this module does not import Dask.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

SCHEDULER_ENV = "MASHLAB_DASK_SCHEDULER"
CONNECT_TIMEOUT_S = 30  # how long to wait for a named scheduler before giving up (s)


class ClusterError(RuntimeError):
    """The Dask scheduler cannot be reached, or `jobs` is not a positive integer; the message says which."""


def scheduler_address() -> str:
    """The scheduler to use: settings.MASHLAB_DASK_SCHEDULER when Django is configured, else the environment.

    '' means none (serial, or a local cluster for jobs > 1). Read lazily so
    that Django-free modules (generation.ingest) can ask too.
    """
    try:
        from django.conf import settings

        if settings.configured:
            return str(getattr(settings, "MASHLAB_DASK_SCHEDULER", "") or "")
    except ImportError:  # pragma: no cover - Django is a dependency; a bare worker may lack settings
        pass
    return os.environ.get(SCHEDULER_ENV, "")


def check_jobs(jobs: int) -> int:
    """`jobs` as an int ≥ 1, else ClusterError (a worker count of 0 or less means nothing)."""
    if int(jobs) != jobs or jobs < 1:
        raise ClusterError(f"jobs must be a positive integer, got {jobs!r}")
    return int(jobs)


@contextmanager
def dask_client(jobs: int = 1, *, scheduler: str | None = None) -> Iterator[Client | None]:
    """A Dask client for the block, or None for serial work (jobs ≤ 1 and no scheduler named).

    `scheduler` overrides :func:`scheduler_address` ('' forces a local
    cluster or serial). A local cluster has `jobs` worker processes of one
    thread each (Dask's nanny also sets OMP/MKL threads to 1 there), and
    shuts down when the block ends.
    """
    jobs = check_jobs(jobs)
    address = scheduler_address() if scheduler is None else scheduler
    if not address and jobs == 1:
        yield None
        return
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler {address} ({SCHEDULER_ENV}): {exc}") from None
        log.info("using Dask scheduler %s (%d workers)", address, len(client.scheduler_info()["workers"]))
        with client:
            yield client
        return
    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        log.info("local Dask cluster of %d workers", jobs)
        yield client


def worker_count(client: Client | None) -> int:
    """How many workers the client's cluster has now (1 for serial)."""
    return 1 if client is None else max(1, len(client.scheduler_info()["workers"]))


def each_result(client: Client | None, fn: Callable[..., Any], args: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
    """(i, fn(*args[i])) for every i: in order in this process without a client, else as workers finish.

    An exception of `fn` is raised here (Dask ships it back with its type);
    the tasks not yet finished are then cancelled. `fn` must be importable
    on the workers (a module-level function of a Django-free module).
    """
    if client is None:
        for i, a in enumerate(args):
            yield i, fn(*a)
        return
    from distributed import as_completed

    futures = [client.submit(fn, *a, pure=False) for a in args]
    index = {f.key: i for i, f in enumerate(futures)}
    try:
        for future in as_completed(futures):
            yield index[future.key], future.result()
    finally:
        client.cancel(futures)


def in_dask_worker() -> bool:
    """True inside a Dask worker's task (so per-worker state, such as torch's thread count, can be set)."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True
