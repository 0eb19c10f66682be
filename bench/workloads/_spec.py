"""What a workload declares: its metrics, their direction, targets and sizes.

A workload module defines one or more `Workload` objects. The runner reads only
these declarations (and never runs workload code itself); the child process
(`bench/worker.py`) patches its runtime first and then calls ``run_threaded`` or
``run_async``.

Every figure is compared with gevent's as ``ratio = figure / gevent's figure``,
whatever the metric: for a metric where higher is better, a ratio above 1 means
better than gevent; where lower is better (memory, lateness), below 1 is better.
A metric whose target is of kind ``"vs_threads"`` is compared with plain OS threads'
figure instead (issue 19: wake-up lateness ≤0.5× OS threads'); a workload that wants
both an absolute verdict and one against threads on the same figure declares two
`Metric` rows with the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

#: A workload's size parameters (iterations, thread counts...), passed as keywords.
Params = dict[str, Any]
#: What a run returns: metric key -> figure.
Figures = dict[str, float]


@dataclass(frozen=True)
class Context:
    """What a workload may need from its runtime and from the runner.

    ``original_sleep`` is the runtime's *unpatched*, OS-thread-blocking
    ``time.sleep``; ``nginx_url`` is the base URL of the benchmark's nginx (or None
    when no HTTP workload runs).
    """

    runtime: str
    original_sleep: Callable[[float], None]
    nginx_url: str | None = None


#: The runtime each kind of ratio target compares with (names as in bench/runtimes.py).
RATIO_BASES: dict[str, str] = {"ratio": "gevent", "vs_threads": "threads"}


@dataclass(frozen=True)
class Target:
    """greensched's goal for one metric.

    ``kind="ratio"`` compares greensched's figure divided by gevent's with ``value``;
    ``kind="vs_threads"`` the same with OS threads' figure (of the same repetition:
    `bench/report.py` pairs them); ``kind="absolute"`` compares greensched's figure
    itself (in the metric's unit).
    """

    kind: Literal["ratio", "vs_threads", "absolute"]
    op: Literal[">=", "<="]
    value: float

    @property
    def base(self) -> str | None:
        """The runtime whose figure a ratio target divides by; None for an absolute one."""
        return RATIO_BASES.get(self.kind)

    def describe(self, unit: str) -> str:
        """Human form, e.g. ``≥3.0× gevent``, ``≤0.5× threads`` or ``≤10 ms``."""
        sign = "≥" if self.op == ">=" else "≤"
        if self.base is not None:
            return f"{sign}{self.value:g}× {self.base}"
        return f"{sign}{self.value:g} {unit}"

    def met(self, figure: float, base_figure: float | None) -> bool | None:
        """True/False, or None when it cannot be judged (no base figure for a ratio).

        For a ratio kind, ``base_figure`` is the base runtime's figure (gevent's or
        threads'); an absolute target ignores it.
        """
        if self.base is not None:
            if base_figure is None or base_figure == 0:
                return None
            measured = figure / base_figure
        else:
            measured = figure
        return measured >= self.value if self.op == ">=" else measured <= self.value


@dataclass(frozen=True)
class Metric:
    """One reported figure of a workload."""

    key: str  # the key in the run's returned dict
    label: str  # shown in the table
    unit: str  # e.g. "threads/s", "KiB", "ms"
    higher_is_better: bool
    target: Target | None = None
    #: The primary metric of its workload: it gets the workload's name in the table.
    primary: bool = False


ThreadedFn = Callable[..., Figures]
AsyncFn = Callable[..., Coroutine[Any, Any, Figures]]


@dataclass(frozen=True)
class Workload:
    """A benchmark: plain blocking code for thread-like runtimes, optionally a coroutine twin.

    ``run_threaded(ctx, **params)`` runs on greensched, gevent, eventlet and plain
    OS threads after each runtime's patching; ``run_async(ctx, **params)``, when
    present, runs on asyncio and uvloop (otherwise those cells show "—").
    """

    name: str
    title: str
    metrics: tuple[Metric, ...]
    run_threaded: ThreadedFn
    run_async: AsyncFn | None
    full: Params = field(default_factory=dict)
    quick: Params = field(default_factory=dict)
    needs_nginx: bool = False
    #: Needs the PostgreSQL server the runner starts (its URL in ``BENCH_PG_URL``).
    needs_postgres: bool = False
    #: Shown under the table: what the peers really do here, caveats.
    note: str = ""

    def params(self, quick: bool) -> Params:
        """The size parameters for a full or a --quick run."""
        return dict(self.quick if quick else self.full)
