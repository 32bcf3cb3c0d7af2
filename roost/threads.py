"""How many threads a CPU loop uses: as many as help now, fewer on a machine shared with other work.

The loops: ``roost train`` and ``roost sft``'s steps, the retriever's training steps, embedding batches.

torch runs a step on one thread per core. Beside other busy work that is often
several times slower than fewer threads: every parallel region waits for its
slowest thread, and the operating system keeps descheduling one of them for the
other work. On 2 cores beside one busy process, a depth-2 model stepped at 5,019
tokens/s on 2 threads and 22,444 on 1; on the quiet machine, 40,790 and 22,311
(BENCHMARKS.md, Training). So a single CPU process can time a few steps at each
candidate count every ``every`` steps and keep the fastest until the next
check. It is ``--threads auto`` (the demo's choice), not the default: the
thread count changes the order of a GEMM's sums, so the same steps on 1 and 2
threads differ in their last bits, and a training run that switches counts by
the machine's load is not bitwise repeatable, as ``--threads fixed`` runs are.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch

from roost.errors import UserError

T = TypeVar("T")
# --threads of the CPU loops: fixed = torch's count all run (one a core, or OMP_NUM_THREADS), bitwise repeatable;
# auto = fewer while other work keeps the cores busy (ThreadTuner)
MODES = ("fixed", "auto")


def check_mode(threads: str) -> None:
    """A clear error for a --threads value that is not one of MODES."""
    if threads not in MODES:
        raise UserError(f"--threads must be one of {', '.join(MODES)}, got {threads!r}")


class ThreadTuner:
    """Call :meth:`before_step` and :meth:`after_step` around each training step."""

    def __init__(
        self, threads: int, every: int = 100, trial_steps: int = 3, first_trial: int = 20, first_seconds: float = 10.0
    ):
        self.candidates = sorted({threads, threads - 1, threads // 2} - {0}, reverse=True)
        self.every, self.trial_steps = every, trial_steps
        self.threads = self.best = threads
        self.next_trial = first_trial  # steps before the first trial: the first ones are slow anyway
        # ... or fewer, once they took this long: beside a busy process 20 SFT steps on 2 threads took ~50 s of a
        # one-minute demo stage, and the trial then found 1 thread 19x faster
        self.first_seconds: float | None = first_seconds
        self.waited = 0.0
        self.trial: list[int] = []  # the thread count of each step of the trial under way
        self.times: dict[int, list[float]] = {}
        self.changes: list[tuple[int, int, float]] = []  # (from, to, speed-up measured), for the log

    @classmethod
    def for_run(cls, device: torch.device, world_size: int, first_trial: int = 20) -> ThreadTuner | None:
        """A tuner for one process on a CPU with more than one thread (None elsewhere)."""
        threads = torch.get_num_threads()
        if device.type != "cpu" or world_size > 1 or threads < 2:
            return None
        return cls(threads, first_trial=first_trial)

    def before_step(self) -> None:
        if not self.trial:
            if self.next_trial > 0:
                self.next_trial -= 1
                return
            self.trial = [c for c in self.candidates for _ in range(self.trial_steps)]
            self.times = {c: [] for c in self.candidates}
        torch.set_num_threads(self.trial[0])

    def after_step(self, seconds: float) -> None:
        if not self.trial:
            if self.first_seconds is not None:
                self.waited += seconds
                if self.waited >= self.first_seconds:
                    self.next_trial = 0
            return
        self.first_seconds = None  # the first trial is under way: from here on, every ``every`` steps
        self.times[self.trial.pop(0)].append(seconds)
        if self.trial:
            return
        speed = {c: 1 / statistics.median(t) for c, t in self.times.items()}
        best = max(speed, key=speed.__getitem__)
        if best != self.best:
            self.changes.append((self.best, best, speed[best] / speed[self.best]))
        self.best, self.next_trial = best, self.every
        torch.set_num_threads(best)

    def restore(self) -> None:
        """Back to the count the run started with, for whatever the process does next."""
        torch.set_num_threads(self.threads)


def tuned_steps(steps: Iterable[T], auto: bool, first_trial: int = 3) -> Iterator[T]:
    """Yield each of ``steps``, with a :class:`ThreadTuner` timing the work the caller does on each, when ``auto``.

    For the loops outside ``roost train`` (the retriever's steps, embedding batches): the first trial comes
    after ``first_trial`` steps, since a loop of a few dozen steps cannot wait 20. The process's count is
    restored at the end, however the loop ends.
    """
    tuner = ThreadTuner.for_run(torch.device("cpu"), 1, first_trial=first_trial) if auto else None
    if tuner is None:
        yield from steps
        return
    try:
        for step in steps:
            tuner.before_step()
            t0 = time.perf_counter()
            yield step
            tuner.after_step(time.perf_counter() - t0)
    finally:
        tuner.restore()
