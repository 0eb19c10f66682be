"""The benchmark workloads, by name.

Importing this package imports every workload module, and with them ``threading``,
``socket``, ``queue``...: the child process (`bench/worker.py`) does so only after
its runtime has patched the stdlib.
"""

from __future__ import annotations

from . import (
    c_calls,
    echo_load,
    fairness,
    hog_cost,
    http_fanout,
    parked_memory,
    pingpong,
    postgres,
    sleep0,
    spawn_join,
    tcp_echo,
    wakeup_storm,
)
from ._spec import Context, Figures, Metric, Target, Workload

__all__ = ["ALL", "Context", "Figures", "Metric", "Target", "Workload", "get"]

#: Every workload, in the order of the table.
ALL: list[Workload] = [
    *spawn_join.WORKLOADS,
    *parked_memory.WORKLOADS,
    *pingpong.WORKLOADS,
    *sleep0.WORKLOADS,
    *tcp_echo.WORKLOADS,
    *http_fanout.WORKLOADS,
    *fairness.WORKLOADS,
    *hog_cost.WORKLOADS,
    *c_calls.WORKLOADS,
    *wakeup_storm.WORKLOADS,
    *postgres.WORKLOADS,
    *echo_load.WORKLOADS,
]

_BY_NAME = {w.name: w for w in ALL}


def get(name: str) -> Workload:
    """The workload called ``name``; ValueError naming the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(_BY_NAME)}") from None


def names() -> list[str]:
    """Every workload name, in table order."""
    return list(_BY_NAME)
