"""The JSON lines every training rank prints, and what a check reads from them.

Each line is one object with ``event`` (``start``, ``step``, ``checkpoint``, ``done``, ``error``), ``rank`` and
``time`` (Unix seconds).  ``start`` carries ``process_count``, ``device_count`` and ``resumed_from`` (the checkpoint
step, or null); ``step`` carries ``step`` (1-based count of applied updates) and ``loss``.  Pure: no JAX, no cluster.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


def line(event: str, rank: int, now: float, **fields: Any) -> str:
    """One log line (compact JSON, keys in a stable order)."""
    return json.dumps({"event": event, "rank": rank, "time": round(now, 3), **fields}, separators=(",", ":"))


def parse(text: str | Iterable[str]) -> list[Record]:
    """The training records in a log (other lines, e.g. JAX's own warnings, are skipped)."""
    lines = text.splitlines() if isinstance(text, str) else text
    out: list[Record] = []
    for raw in lines:
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "event" in rec and "rank" in rec:
            out.append(rec)
    return out


@dataclass(frozen=True)
class Attempt:
    """What one run of the whole group (all ranks, from start to exit) logged."""

    process_counts: dict[int, int]
    """rank → ``process_count()`` that rank saw."""
    resumed_from: dict[int, int | None]
    """rank → checkpoint step it started from (None: from scratch)."""
    losses: dict[int, dict[int, float]]
    """rank → step → loss."""
    checkpoints: list[int] = field(default_factory=list)
    """Steps rank 0 checkpointed, in order."""
    done: dict[int, int] = field(default_factory=dict)
    """rank → final step, for ranks that finished."""
    start_time: float = math.nan
    first_step_time: float = math.nan

    @property
    def steps(self) -> list[int]:
        return sorted({s for by_step in self.losses.values() for s in by_step})

    def loss_curve(self) -> list[tuple[int, float]]:
        """(step, loss) as rank 0 logged it (every rank logs the same loss; see :func:`problems`)."""
        ranks = sorted(self.losses)
        if not ranks:
            return []
        return sorted(self.losses[ranks[0]].items())


def attempt(records: Iterable[Record]) -> Attempt:
    counts: dict[int, int] = {}
    resumed: dict[int, int | None] = {}
    losses: dict[int, dict[int, float]] = {}
    ckpts: list[int] = []
    done: dict[int, int] = {}
    start_t = math.inf
    first_t = math.inf
    for rec in records:
        rank = int(rec["rank"])
        ev = rec["event"]
        t = float(rec.get("time", math.nan))
        if ev == "start":
            counts[rank] = int(rec["process_count"])
            resumed[rank] = None if rec.get("resumed_from") is None else int(rec["resumed_from"])
            start_t = min(start_t, t)
        elif ev == "step":
            losses.setdefault(rank, {})[int(rec["step"])] = float(rec["loss"])
            first_t = min(first_t, t)
        elif ev == "checkpoint" and rank == 0:
            ckpts.append(int(rec["step"]))
        elif ev == "done":
            done[rank] = int(rec["step"])
    return Attempt(counts, resumed, losses, ckpts, done,
                   start_t if start_t != math.inf else math.nan, first_t if first_t != math.inf else math.nan)


def problems(att: Attempt, workers: int) -> list[str]:
    """Why ``att`` is not one data-parallel group of ``workers`` processes; empty when it is.

    Every rank 0..workers-1 must have started, each must report ``process_count() == workers``, and every rank must
    log the same loss at every step (bit-identical: the losses come from the same all-reduce).
    """
    out: list[str] = []
    missing = sorted(set(range(workers)) - set(att.process_counts))
    if missing:
        out.append(f"ranks {missing} never logged a start line")
    wrong = {r: c for r, c in att.process_counts.items() if c != workers}
    if wrong:
        out.append(f"process_count() differs from {workers}: {wrong}")
    ranks = sorted(att.losses)
    if ranks:
        ref = att.losses[ranks[0]]
        for r in ranks[1:]:
            if set(att.losses[r]) != set(ref):
                out.append(f"rank {r} logged steps {_span(att.losses[r])}, rank {ranks[0]} logged {_span(ref)}")
                continue
            diff = [s for s in sorted(ref) if att.losses[r][s] != ref[s]]
            if diff:
                s = diff[0]
                out.append(f"rank {r} loss differs from rank {ranks[0]} at {len(diff)} steps (first: step {s}: "
                           f"{att.losses[r][s]!r} vs {ref[s]!r})")
    elif not missing:
        out.append("no rank logged a step")
    return out


def _span(by_step: dict[int, float]) -> str:
    return f"{min(by_step)}..{max(by_step)} ({len(by_step)})" if by_step else "none"


def falling(curve: list[tuple[int, float]], window: int = 5) -> bool:
    """True when the mean loss over the last ``window`` points is below the mean over the first ``window``."""
    if len(curve) < 2 * window:
        window = max(1, len(curve) // 2)
    if len(curve) < 2:
        return False
    head = [v for _, v in curve[:window]]
    tail = [v for _, v in curve[-window:]]
    return sum(tail) / len(tail) < sum(head) / len(head)
