"""Creating a cluster as a pipeline of named actions (kind's style): each action prints its own status line, does
one thing, and knows how to undo it.  When an action fails or the user presses Ctrl-C, the undos of every action
that ran (the failing one included: it may have half-done its work) run in reverse order, and the error goes on up.

Owns the pipeline only; the actions themselves are built by cluster.py.  An undo must be safe to run on a half-done
action and on one that did nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.errors import AiconformError
from harness.providers.base import Progress


@dataclass(frozen=True)
class Action:
    name: str
    """Short and stable (``etcd``, ``apiserver``): the status line and the undo messages name it."""
    title: str
    """What the status line says it does."""
    run: Callable[[], None]
    undo: Callable[[], None] | None = None


def run_actions(actions: Sequence[Action], progress: Progress) -> None:
    """Run ``actions`` in order; on any exception (KeyboardInterrupt included) undo the ones that ran, newest
    first, then re-raise."""
    started: list[Action] = []
    try:
        for i, action in enumerate(actions, 1):
            progress(f"[{i}/{len(actions)}] {action.name}: {action.title}")
            started.append(action)
            action.run()
    except BaseException:
        progress("bring-up did not finish; undoing what was done")
        undo_actions(started, progress)
        raise


def undo_actions(started: Sequence[Action], progress: Progress) -> list[str]:
    """Undo ``started`` in reverse; an undo that fails is reported and the others still run.  Returns the failures."""
    failures = []
    for action in reversed(started):
        if action.undo is None:
            continue
        try:
            action.undo()
        except (AiconformError, OSError) as err:
            failures.append(f"{action.name}: {err}")
            progress(f"warning: undoing {action.name} failed: {err}")
    return failures
