"""Batch lookups in worker processes, so that no batch holds the server's GIL.

In a thread, a 10,000-row batch still held the interpreter lock for tens of
milliseconds at a time (JSON parsing, the frame, the answer's encoding are C code that
keeps it), and a point lookup meanwhile waited up to 37 ms. Each worker process holds
its own :class:`~gisgrid.lookup.directory.Directory` of the workspace, rebuilt when the
workspace's revision moves on, so a batch never answers from grids older than those the
server shows when it starts.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor

import pandas as pd

from gisgrid._errors import GisgridError, InputError
from gisgrid.io.workspace import Workspace
from gisgrid.lookup.directory import Directory

__all__ = ["BatchPool", "batch_table"]

PARENT_POLL_S = 1.0  # how often a worker checks that its server still runs
logger = logging.getLogger(__name__)

_state: dict = {}  # in a worker: the workspace location, and (revision, directory)


def _start(location: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops us
    _background()
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    _state["location"] = location
    with contextlib.suppress(GisgridError):  # no grids yet: the batch will say so
        _directory()  # ready before the first batch


def _background() -> None:
    """Run only when the server's own process does not want the CPU: SCHED_IDLE where
    Linux has it (nice 10 still left single-point lookups waiting a time slice behind a
    batch: p99 2.9-3.9 ms against 1.1 ms idle on 2 cores), else the lowest niceness."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def _exit_with(parent: int) -> None:
    """Exit once the server is gone: stopped by a signal before it could shut the pool
    down (SIGTERM from systemd or docker), or killed, it leaves its workers orphaned, each
    holding a directory in memory, waiting for batches that never come."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _directory() -> Directory:
    ws = Workspace(_state["location"])
    revision = ws.revision
    kept = _state.get("directory")
    if kept is None or kept[0] != revision:
        kept = _state["directory"] = (revision, Directory(ws))
    return kept[1]


def batch_table(body: bytes, kind: str) -> pd.DataFrame:
    """The rows of a batch body: CSV (``text/csv``), else a JSON array of objects.

    Raises
    ------
    InputError
        For a body that is neither, or JSON nested too deep.
    """
    if kind == "text/csv":
        try:
            return pd.read_csv(io.BytesIO(body), dtype=str, encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise InputError(f"the CSV body cannot be read: {exc}") from None
    try:
        rows = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(
            "the body must be a JSON array of {lon, lat} or {address} objects, or text/csv"
        ) from None
    except RecursionError:  # [[[[…]]]] 100,000 deep
        raise InputError(
            "the JSON body is nested too deep: send a flat array of {lon, lat} or {address}"
        ) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError("the body must be a JSON array of {lon, lat} or {address} objects")
    table = pd.DataFrame(rows)
    if "address" not in table.columns:  # rows without coordinates get a reason, not an error
        missing = [c for c in ("lon", "lat") if c not in table.columns]
        table = table.reindex(columns=[*table.columns, *missing])
    return table


def _answer(body: bytes, kind: str, options: dict) -> tuple[int, str, bytes]:
    """(status, media type, body) of one batch, in a worker."""
    try:
        table = batch_table(body, kind)
        lon_col, lat_col, address_col = (
            options["lon_col"],
            options["lat_col"],
            options["address_col"],
        )
        if kind != "text/csv":  # records name their columns lon, lat or address
            lon_col, lat_col = "lon", "lat"
            address_col = "address" if "address" in table.columns else None
        if len(table) > options["max_batch"]:
            detail = (
                f"{len(table):,} rows is more than the {options['max_batch']:,} a batch may "
                "hold; split it"
            )
            return 413, "application/json", json.dumps({"detail": detail}).encode()
        out = _directory().table(
            table,
            lon_col=lon_col,
            lat_col=lat_col,
            address_col=address_col,
            crs=options["crs"],
            source="the CSV" if kind == "text/csv" else "the JSON body",
        )
    except GisgridError as exc:
        return 400, "application/json", json.dumps({"detail": str(exc)}).encode()
    if kind == "text/csv":
        return 200, "text/csv; charset=utf-8", out.to_csv(index=False).encode()
    return 200, "application/json", out.to_json(orient="records", force_ascii=False).encode()


class BatchPool:
    """``workers`` processes answering batches for the workspace at ``location``."""

    def __init__(self, location: str, *, workers: int) -> None:
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=mp.get_context("spawn"),  # never fork a threaded server
            initializer=_start,
            initargs=(location,),
        )
        for _ in range(workers):  # start them now, not on the first batch
            self._pool.submit(int)

    def submit(self, body: bytes, kind: str, **options: object) -> Future[tuple[int, str, bytes]]:
        """The answer of a batch, to come: (status, media type, body)."""
        return self._pool.submit(_answer, body, kind, options)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
