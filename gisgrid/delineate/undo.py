"""Undo and redo of one planner's edits.

Each planner has an :class:`EditLog`: the edits they made (moves, locks, runs) in
order. Undoing a move or a run restores the draft of the run before it (a
rollback, itself a run in the history); undoing a lock unlocks. An undo or redo
is refused with a conflict when the workspace changed since the planner's own
last step (another planner's edit would be undone with it), never applied over
it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Literal

from gisgrid._errors import ConflictError
from gisgrid.delineate.edits import lock
from gisgrid.delineate.history import rollback
from gisgrid.io.workspace import Workspace

__all__ = ["EditLog", "Step"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One edit: a run (a move, a delineation; from run ``before`` to run ``after``), or
    grids locked or unlocked."""

    kind: Literal["run", "lock"]
    label: str
    before: int = 0
    after: int = 0
    codes: tuple[str, ...] = ()
    locked: bool = True


@dataclass
class EditLog:
    """A planner's edits, to undo and redo; safe to share between threads."""

    done: list[Step] = field(default_factory=list)
    undone: list[Step] = field(default_factory=list)
    revision: int = -1  # the workspace revision after this planner's last step
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, step: Step, revision: int) -> None:
        """Note an edit just made (it ends what could be redone)."""
        with self._lock:
            self.done.append(step)
            self.undone.clear()
            self.revision = revision

    def wrote(self, revision: int) -> None:
        """Note a write of this planner's that is no edit (a publication): their edits
        stay undoable across it."""
        with self._lock:
            self.revision = revision

    def undo(self, ws: Workspace) -> Step:
        """Undo the last edit; the step undone.

        Raises
        ------
        ConflictError
            When there is nothing to undo, or the workspace changed since this planner's
            last step.
        """
        with self._lock:
            step = self._next(ws, self.done, "undo")
            self._apply(ws, step, back=True)
            self.undone.append(self.done.pop())
            self.revision = ws.last_revision
            return step

    def redo(self, ws: Workspace) -> Step:
        """Make the last undone edit again; the step redone (conflicts as :meth:`undo`)."""
        with self._lock:
            step = self._next(ws, self.undone, "redo")
            self._apply(ws, step, back=False)
            self.done.append(self.undone.pop())
            self.revision = ws.last_revision
            return step

    def _next(self, ws: Workspace, steps: list[Step], verb: str) -> Step:
        now = ws.revision
        if not steps:
            raise ConflictError(f"nothing to {verb}", layers=[], revision=now)
        if now != self.revision:
            raise ConflictError(
                f"cannot {verb} {steps[-1].label}: the draft changed since your last edit "
                f"(revision {self.revision} → {now}), and the {verb} would discard that "
                "change; reload the grids and edit them again",
                layers=["grids"],
                revision=now,
            )
        return steps[-1]

    @staticmethod
    def _apply(ws: Workspace, step: Step, *, back: bool) -> None:
        if step.kind == "lock":
            lock(ws, list(step.codes), locked=step.locked != back)
        else:
            rollback(ws, step.before if back else step.after)
        logger.info("%s %s", "undid" if back else "redid", step.label)
