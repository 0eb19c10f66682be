"""Loops dominated by C calls beside the 5 ms ticker: printing, hashing, regular expressions.

A preemptive scheduler can only switch away from a thread between two bytecodes; a
loop that spends most of its time inside C functions gives it fewer and later chances
than the pure-Python hog of ``hog_ticker``, and may hide a C path that never checks
for a pending switch at all. Three such loops run for ``seconds`` each, one after the
other, in threads of their own beside the ticker of the fairness workloads
(`_ticker.py`, a wake-up every 5 ms):

* ``print``: ``print()`` of a short line to a buffered text file opened on
  ``os.devnull`` (``open(os.devnull, "w")``: a ``TextIOWrapper`` over a
  ``BufferedWriter``, the C path of ``sys.stdout`` when it is a pipe or a file;
  never the worker's own stdout, which carries the BENCH-RESULT line);
* ``hash``: ``hashlib.sha256().update()`` of 4 KiB chunks (CPython releases the GIL
  inside ``update`` for chunks of 2 KiB or more, so OS threads see this loop as
  mostly blocking);
* ``re``: a compiled pattern's ``.match()`` on ~50-character strings.

Reported per loop: the ticker's lateness p99 and max over the wake-ups due during
that loop. The coroutine twin runs each loop in a task that never awaits, as
fairness.py does: cooperative runtimes starve the ticker for the whole second.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from time import monotonic

from ._spec import Context, Figures, Metric, Target, Workload
from ._ticker import Ticks, abeside_ticker, beside_ticker, lateness_during, lateness_ms

_LINE = "greensched c_calls: a short line of output, 42"
_CHUNK = bytes(range(256)) * 16  # 4 KiB
_PATTERN = re.compile(r"(\w+)\.(\w+)@([a-z]+)\.(com|org|net)\b")
#: ~50-character inputs; half match, half fail late in the pattern.
_SUBJECTS = [f"user{i:04d}.name{i % 97:02d}@example{'.org' if i % 2 else '.xyz'} and some trailing words"
             for i in range(64)]
#: How many C calls each loop makes between two looks at the clock.
_BATCH = 200


def _print_loop(seconds: float, out: dict[str, float]) -> None:
    with open(os.devnull, "w") as sink:  # buffered text I/O, as stdout to a pipe
        start = monotonic()
        deadline, calls = start + seconds, 0
        while monotonic() < deadline:
            for _ in range(_BATCH):
                print(_LINE, file=sink)
            calls += _BATCH
        out.update(start=start, end=monotonic(), calls=calls)


def _hash_loop(seconds: float, out: dict[str, float]) -> None:
    digest = hashlib.sha256()
    start = monotonic()
    deadline, calls = start + seconds, 0
    while monotonic() < deadline:
        for _ in range(_BATCH):
            digest.update(_CHUNK)
        calls += _BATCH
    digest.digest()
    out.update(start=start, end=monotonic(), calls=calls)


def _re_loop(seconds: float, out: dict[str, float]) -> None:
    match, subjects = _PATTERN.match, _SUBJECTS
    n = len(subjects)
    start = monotonic()
    deadline, calls, matched = start + seconds, 0, 0
    while monotonic() < deadline:
        for i in range(_BATCH):
            if match(subjects[i % n]) is not None:
                matched += 1
        calls += _BATCH
    if not matched:
        raise AssertionError("the pattern never matched: the re loop measures nothing")
    out.update(start=start, end=monotonic(), calls=calls)


#: (name, loop): the order they run in; the name prefixes the figures' keys.
LOOPS: list[tuple[str, Callable[[float, dict[str, float]], None]]] = [
    ("print", _print_loop),
    ("hash", _hash_loop),
    ("re", _re_loop),
]


def _figures(ticks: Ticks, outs: list[dict[str, float]]) -> Figures:
    figures: Figures = {}
    for (name, _), out in zip(LOOPS, outs, strict=True):
        if "end" not in out:
            raise AssertionError(f"the {name} loop did not finish: its thread failed (traceback above)")
        late = lateness_ms(lateness_during(ticks, out["start"], out["end"]), f"the {name} loop")
        figures[f"{name}_p99_ms"] = late["p99_ms"]
        figures[f"{name}_max_ms"] = late["max_ms"]
    return figures


def run_threaded(ctx: Context, seconds: float) -> Figures:
    """Plain ``threading`` code: each loop in a thread of its own beside the ticker."""
    outs: list[dict[str, float]] = [{} for _ in LOOPS]
    ticks = beside_ticker([(loop, (seconds, out)) for (_, loop), out in zip(LOOPS, outs, strict=True)])
    return _figures(ticks, outs)


async def run_async(ctx: Context, seconds: float) -> Figures:
    """The coroutine twin: each loop in a task that never awaits."""
    outs: list[dict[str, float]] = [{} for _ in LOOPS]
    ticks = await abeside_ticker([(loop, (seconds, out))
                                  for (_, loop), out in zip(LOOPS, outs, strict=True)])
    return _figures(ticks, outs)


def _metrics() -> tuple[Metric, ...]:
    what = {"print": "print()", "hash": "sha256 update", "re": "re match"}
    metrics: list[Metric] = []
    for name, _ in LOOPS:
        metrics.append(Metric(f"{name}_p99_ms", f"ticker lateness p99, {what[name]}", "ms",
                              higher_is_better=False, target=Target("absolute", "<=", 20.0),
                              primary=not metrics))
        metrics.append(Metric(f"{name}_max_ms", f"ticker lateness max, {what[name]}", "ms",
                              higher_is_better=False))
    return tuple(metrics)


WORKLOADS = [
    Workload(
        name="c_calls",
        title="loops of C calls (print, sha256, re), 1 s each, beside a 5 ms ticker",
        metrics=_metrics(),
        run_threaded=run_threaded,
        run_async=run_async,
        full={"seconds": 1.0},
        quick={"seconds": 1.0},
        note="Each loop makes 200 C calls between two looks at the clock. The cooperative "
             "runtimes starve the ticker for each whole loop.",
    ),
]
