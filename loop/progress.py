"""The driver's terminal status: one line per arm (generation g/G, phase, step, loss, ETA),
read from the arms' ``status.json`` files."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Live status lines, one per arm: generation g/G, phase, step, ETA.

    On a terminal the block is redrawn in place; otherwise a line is printed whenever an
    arm's generation or phase changes (readable in CI logs and ``ray job logs``)."""

    def __init__(self, arms: list[str], generations: dict[str, int], stream=None) -> None:
        self.arms, self.generations = arms, generations
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._drawn = 0
        self._last_key: dict[str, tuple] = {}
        self.t0 = time.time()
        # Wide enough for whole names (arms of a sweep often differ only in their last
        # characters, e.g. the seed), capped so a redrawn line does not wrap on a terminal.
        self.name_width = min(60, max([3, *(len(a) for a in arms)]))

    def line(self, arm: str, st: dict[str, Any]) -> str:
        big_g = self.generations[arm]
        g = st.get("generation", 0)
        phase = st.get("phase", "waiting")
        step, steps = st.get("step"), st.get("steps")
        detail = f" {step}/{steps}" if phase == "train" and steps else ""
        loss = f" loss {st['loss']:.3f}" if phase == "train" and "loss" in st else ""
        started = st.get("started")
        eta = ""
        if started and g > 0 and phase != "done":
            per_gen = (time.time() - started) / g
            eta = f" ETA {_fmt_s(per_gen * (big_g + 1 - g))}"
        return f"{_fit(arm, self.name_width)} gen {g}/{big_g} {phase:10}{detail}{loss}{eta}"

    def update(self, statuses: dict[str, dict[str, Any]], force: bool = False) -> None:
        lines = [self.line(a, statuses.get(a, {})) for a in self.arms]
        if self.tty:
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F")
            for text in lines:
                self.stream.write("\x1b[2K" + text + "\n")
            self._drawn = len(lines)
            self.stream.flush()
            return
        for arm, text in zip(self.arms, lines):
            st = statuses.get(arm, {})
            key = (st.get("generation"), st.get("phase") == "done")
            if force or self._last_key.get(arm) != key:
                self._last_key[arm] = key
                self.stream.write(f"[{_fmt_s(time.time() - self.t0)}] {text}\n")
        self.stream.flush()


def _fit(name: str, width: int) -> str:
    """`name` padded to `width`; if longer, its middle is elided so the distinguishing end stays."""
    if len(name) <= width:
        return f"{name:{width}}"
    tail = width // 3
    return name[: width - tail - 1] + "…" + name[-tail:]


def _fmt_s(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
