"""What every benchmark reports, and how it is measured."""

from __future__ import annotations

import os
import resource
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

POSTGRES_ADMIN = os.environ.get(
    "PATRONAGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass
class Result:
    """One measured line of a benchmark table."""

    benchmark: str  # e.g. "Shopify order CSV import"
    variant: str  # e.g. "Patronage bulk import" or "baseline: row-by-row ORM insert"
    backend: str  # sqlite | postgresql | —
    items: int  # rows, events, … processed
    unit: str  # "rows", "events", …
    seconds: float
    peak_mb: float  # peak resident memory of the process during the run (MiB)
    target: str = ""  # e.g. "≥ 50,000 rows/s"
    met: bool | None = None  # whether the target was met (None: no target for this line)
    note: str = ""
    measured_at: str = ""  # UTC time of the run that measured this line (set by benchmarks.run)
    size: str = ""  # "quick" or "full" (set by benchmarks.run)

    @property
    def rate(self) -> float:
        """Items per second."""
        return self.items / self.seconds if self.seconds else float("inf")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """Measure wall-clock seconds of the block; call the yielded function after it for the value."""
    start = time.perf_counter()
    elapsed: list[float] = []
    try:
        yield lambda: elapsed[0] if elapsed else time.perf_counter() - start
    finally:
        elapsed.append(time.perf_counter() - start)


def traced_peak_mb(work: Callable[[], T]) -> tuple[T, float]:
    """Run `work` under tracemalloc and return its result and the Python heap peak in MiB."""
    tracemalloc.start()
    try:
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 2**20
