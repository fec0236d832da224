"""Planners' background jobs: re-delineating or re-dividing a community.

Each job runs in its own spawned process, so the server stays responsive and a
job can be cancelled by ending its process: the job writes its result in one
transaction at the end, so a cancelled job leaves the draft as it was. (A
re-division writes twice, the new communities first; it cannot be cancelled
once they are written.) Progress comes back over a queue.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from gisgrid._errors import ConflictError, GisgridError, NotFoundError

__all__ = ["Job", "Jobs"]

logger = logging.getLogger(__name__)

JobKind = Literal["delineate", "redivide"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]


def _run(target: str, kind: JobKind, options: dict, out: Any) -> None:
    """The job's process: run it, report progress and the result on ``out``."""
    from gisgrid.delineate.redivision import redivide
    from gisgrid.delineate.run import delineate
    from gisgrid.io.workspace import Workspace

    def progress(done: int, total: int) -> None:
        out.put(("progress", done, total))

    ws = Workspace(target)
    code = options["community_code"]
    try:
        if kind == "delineate":
            run = delineate(
                ws, communities=[code], full=options.get("full", True), progress=progress
            )
            result = {"run_id": run.run_id, "grids": run.metrics.get("grids")}
        else:
            plan = redivide(
                ws,
                code,
                parts=options.get("parts"),
                max_households=options.get("max_households"),
                progress=progress,
                committed=lambda: out.put(("committed",)),
            )
            result = {"communities": plan.communities["code"].tolist()}
        out.put(("done", {**result, "revision": ws.last_revision}))
    except ConflictError as exc:
        out.put(("failed", str(exc), 409))
    except GisgridError as exc:
        out.put(("failed", str(exc), 400))
    except Exception:  # a bug: logged in the job's process, a plain line for the planner
        logging.getLogger(__name__).exception("job %s on %s failed", kind, code)
        out.put(("failed", "internal error in the job; the server log has the details", 500))


@dataclass
class Job:
    """One job and what is known of it."""

    id: int
    kind: JobKind
    community_code: str
    owner: str
    before_run: int
    state: JobState = "running"
    done: int = 0
    total: int = 0
    committed: bool = False
    recorded: bool = False  # its result noted for undo (once)
    result: dict | None = None
    error: str = ""
    status: int = 200
    started: float = field(default_factory=time.time)
    process: Any = field(default=None, repr=False)
    messages: Any = field(default=None, repr=False)

    def view(self) -> dict:
        """The job as the API shows it."""
        progress = self.done / self.total if self.total else (1.0 if self.state == "done" else 0.0)
        return {
            "id": self.id,
            "kind": self.kind,
            "community_code": self.community_code,
            "state": self.state,
            "progress": round(progress, 3),
            "result": self.result,
            "error": self.error or None,
            "seconds": round(time.time() - self.started, 1),
        }


class Jobs:
    """The server's jobs: at most one running per community."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._context = mp.get_context("spawn")

    def start(self, kind: JobKind, options: dict, *, owner: str, before_run: int) -> Job:
        """Start a job.

        Raises
        ------
        ConflictError
            When a job is already running on the community.
        """
        code = options["community_code"]
        with self._lock:
            busy = [j for j in self._jobs.values() if j.community_code == code]
            for j in busy:
                self._drain(j)
            if any(j.state == "running" for j in busy):
                raise ConflictError(
                    f"a job is already running on community {code}; wait for it or cancel it",
                    layers=["grids"],
                    revision=0,
                )
            messages = self._context.Queue()
            process = self._context.Process(
                target=_run, args=(self.target, kind, options, messages), daemon=True
            )
            process.start()
            job = Job(
                next(self._ids), kind, code, owner, before_run, process=process, messages=messages
            )
            self._jobs[job.id] = job
        logger.info("job %d: %s of %s started", job.id, kind, code)
        return job

    def get(self, job_id: int) -> Job:
        """A job, its state brought up to date.

        Raises
        ------
        NotFoundError
            When there is no such job.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id} (jobs live as long as the server)")
            self._drain(job)
            return job

    def cancel(self, job_id: int) -> Job:
        """Cancel a running job (nothing it would write is written).

        Raises
        ------
        ConflictError
            When the job has finished, or has already written part of its result.
        """
        job = self.get(job_id)
        with self._lock:
            if job.state != "running" or job.committed:
                why = job.state if job.state != "running" else "past the point of no return"
                raise ConflictError(
                    f"job {job_id} cannot be cancelled: it is {why}"
                    + (
                        "; the communities are re-divided and the grids inside are being drawn"
                        if job.committed
                        else ""
                    ),
                    layers=[],
                    revision=0,
                )
            job.process.kill()
            job.process.join(5)
            job.state = "cancelled"
        logger.info("job %d cancelled", job_id)
        return job

    def close(self) -> None:
        """End every running job."""
        with self._lock:
            for job in self._jobs.values():
                if job.state == "running":
                    job.process.kill()
                    job.state = "cancelled"

    @staticmethod
    def _drain(job: Job) -> None:
        """Read what the job's process has said since it was last asked."""
        while job.state == "running":
            try:
                message = job.messages.get_nowait()
            except queue.Empty:
                if not job.process.is_alive() and job.messages.empty():
                    job.state, job.error, job.status = "failed", "the job's process died", 500
                break
            if message[0] == "progress":
                job.done, job.total = message[1], message[2]
            elif message[0] == "committed":
                job.committed = True
            elif message[0] == "done":
                job.state, job.result = "done", message[1]
                job.done = job.total = max(job.total, 1)
            else:
                job.state, job.error, job.status = "failed", message[1], message[2]
            if job.state != "running":
                job.process.join(5)
