"""Fan independent tasks (one per community) out to processes: here, or on a Dask cluster.

Without a scheduler the tasks run in a local process pool (or in this process
for one worker): the demo needs no service. With ``scheduler="tcp://HOST:PORT"``
each task runs on a dask.distributed cluster: its inputs are scattered once to
one worker, results stream back as they finish, a task that raised on a worker
is retried there, and a task whose worker died (taking its inputs with it) is
sent again. Results are keyed, not ordered, so the caller's output does not
depend on which worker finished first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import gisgrid
from gisgrid._errors import InputError

__all__ = ["fan_out"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

CONNECT_SECONDS = 10  # to reach the scheduler
WORKERS_SECONDS = 30  # for a first worker to join a scheduler that has none
RETRIES = 2  # a task that raises on a worker is run again this often
RESENDS = 3  # a task lost with its worker is sent again this often


def fan_out(
    func: Callable[[T], R],
    tasks: Sequence[T],
    *,
    key: Callable[[T], str],
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, R]:
    """Run ``func`` on every task; the results by ``key(task)``.

    Parameters
    ----------
    func
        A module-level function (it is pickled by reference).
    tasks
        Its inputs, in the order to start them (largest first balances best).
    key
        Names a task; unique among ``tasks``.
    workers
        Local processes when there is no ``scheduler``.
    scheduler
        A dask.distributed scheduler address; the workers need the same gisgrid.
    progress
        Called with (tasks done, tasks in all) as each finishes.

    Returns
    -------
    dict
        ``key(task)`` → ``func(task)``.
    """
    if scheduler:
        return _on_dask(func, tasks, key=key, scheduler=scheduler, progress=progress)
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return _collected(tasks, pool.map(func, tasks), key=key, progress=progress)
    return _collected(tasks, map(func, tasks), key=key, progress=progress)


def _collected(
    tasks: Sequence[T],
    done: Iterable[R],
    *,
    key: Callable[[T], str],
    progress: Callable[[int, int], None] | None,
) -> dict[str, R]:
    """The results, in the tasks' order, by key; progress reported as each comes."""
    results: dict[str, R] = {}
    for i, (task, result) in enumerate(zip(tasks, done, strict=True)):
        results[key(task)] = result
        if progress:
            progress(i + 1, len(tasks))
    return results


def _on_dask(
    func: Callable[[T], R],
    tasks: Sequence[T],
    *,
    key: Callable[[T], str],
    scheduler: str,
    progress: Callable[[int, int], None] | None,
) -> dict[str, R]:
    from distributed import as_completed

    client = _connect(scheduler)
    results: dict[str, R] = {}
    with client:
        _check_workers(client, scheduler)
        run = uuid.uuid4().hex[:8]
        sent: dict[Any, tuple[T, int]] = {}

        def send(task: T, attempt: int) -> Any:
            [data] = client.scatter([task], hash=False)
            future = client.submit(
                func,
                data,
                key=f"{func.__name__}-{key(task)}-{run}-{attempt}",
                retries=RETRIES,
                pure=False,
            )
            sent[future] = (task, attempt)
            return future

        pending = as_completed([send(task, 0) for task in tasks], loop=client.loop)
        for future in pending:
            task, attempt = sent.pop(future)
            if future.status == "finished":
                results[key(task)] = future.result()
                if progress:
                    progress(len(results), len(tasks))
            elif attempt < RESENDS and _lost(future):
                logger.warning("%s lost with its worker; sending it again", key(task))
                pending.add(send(task, attempt + 1))
            else:
                future.result()  # raises the task's own error
            future.release()
    return results


def _connect(scheduler: str) -> Any:
    from distributed import Client

    try:
        return Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(
            f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one with "
            f"`dask scheduler` and give its tcp://HOST:PORT, or leave out the scheduler "
            f"to run on this machine"
        ) from None


def _check_workers(client: Any, scheduler: str) -> None:
    """Fail early, and say why, when the cluster cannot run gisgrid's tasks."""
    try:
        client.wait_for_workers(1, timeout=WORKERS_SECONDS)
    except TimeoutError:
        raise InputError(
            f"the Dask scheduler at {scheduler} has no workers after {WORKERS_SECONDS} s; "
            f"start some with `dask worker {scheduler}`"
        ) from None
    try:
        versions = client.run(_version)
    except Exception as exc:  # unpickling gisgrid's function fails where it is missing
        raise InputError(
            f"the Dask workers of {scheduler} cannot run gisgrid ({type(exc).__name__}: "
            f"{exc}); install gisgrid {gisgrid.__version__} where they run"
        ) from None
    other = {addr: v for addr, v in versions.items() if v != gisgrid.__version__}
    if other:
        raise InputError(
            f"Dask workers run another gisgrid than this one ({gisgrid.__version__}): "
            + ", ".join(f"{addr} has {v}" for addr, v in sorted(other.items()))
        )


def _version() -> str:
    return gisgrid.__version__


def _lost(future: Any) -> bool:
    """Whether a future failed because a worker died, not because its task raised."""
    from distributed import KilledWorker

    if future.status == "cancelled":
        return True
    return isinstance(future.exception(), KilledWorker)
