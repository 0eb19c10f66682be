"""The Celery application the Celery tests and the benchmark run in real workers.

``celery -A tests.integrations.celery_proj worker ...``; the broker and result
backend come from ``GREENSCHED_CELERY_BROKER`` (a redis:// or amqp:// URL) and
``GREENSCHED_CELERY_BACKEND`` (a redis:// URL; the broker's when unset). Tasks
report the worker's wall clock (``time.time()``), so a client on the same machine
can tell when each one ran.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

BROKER = os.environ.get("GREENSCHED_CELERY_BROKER", "redis://127.0.0.1:6379/0")
BACKEND = os.environ.get("GREENSCHED_CELERY_BACKEND", BROKER if BROKER.startswith("redis") else "")

app = Celery("celery_proj", broker=BROKER, backend=BACKEND or None)
app.conf.update(
    task_track_started=True,
    result_expires=600,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # A killed worker's unacknowledged acks_late tasks come back after this long.
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("GREENSCHED_CELERY_VISIBILITY", "3600")),
    },
    task_soft_time_limit=(float(os.environ["GREENSCHED_CELERY_SOFT_LIMIT"])
                          if os.environ.get("GREENSCHED_CELERY_SOFT_LIMIT") else None),
    task_time_limit=(float(os.environ["GREENSCHED_CELERY_HARD_LIMIT"])
                     if os.environ.get("GREENSCHED_CELERY_HARD_LIMIT") else None),
    # AMQP heartbeats (RabbitMQ): the broker drops a connection that misses them.
    broker_heartbeat=float(os.environ.get("GREENSCHED_CELERY_HEARTBEAT", "120")),
)


#: What this module saw at import: green objects if the pool patched before the app loaded.
_AT_IMPORT = {"socket": socket.socket, "sleep": time.sleep}


def _spin(seconds: float) -> int:
    """Compute (pure Python, never waits) for ``seconds``."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


@app.task
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return time.time()


@app.task
def now() -> float:
    """A short task: its I/O is the broker and backend round trips around it."""
    return time.time()


@app.task
def compute(seconds: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        n = _spin(seconds)
    except SoftTimeLimitExceeded:
        return {"soft_limit_after": time.monotonic() - started}
    return {"spun": n, "seconds": time.monotonic() - started}


@app.task(soft_time_limit=1)
def compute_soft_limited(seconds: float) -> dict[str, Any]:
    """Computes past its soft limit; catches SoftTimeLimitExceeded and says when it came."""
    return compute(seconds)


def _record_span(marker: str, started: float) -> None:
    """Push ``started`` and now (the worker's monotonic clock) to the redis list ``marker``."""
    import redis

    redis.Redis.from_url(BACKEND or BROKER).rpush(marker, repr(started), repr(time.monotonic()))


@app.task(time_limit=2)
def compute_hard_limited(seconds: float, marker: str = "") -> dict[str, Any]:
    """Computes past its hard limit, and does not stop for the soft one (there is none).

    With ``marker``, records when it began and when it was ended (its ``finally``).
    """
    started = time.monotonic()
    try:
        return {"spun": _spin(seconds)}
    finally:
        if marker:
            _record_span(marker, started)


@app.task(time_limit=2)
def block_hard_limited(seconds: float, marker: str = "") -> float:
    """Waits (a green sleep) past its hard limit; ``marker``: as `compute_hard_limited`."""
    started = time.monotonic()
    try:
        time.sleep(seconds)
    finally:
        if marker:
            _record_span(marker, started)
    return time.time()


@app.task(soft_time_limit=1)
def block_soft_limited(seconds: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return {"soft_limit_after": time.monotonic() - started}
    return {"slept": seconds}


@app.task
def environment() -> dict[str, Any]:
    """How the worker process is set up: were the app's imports green, which loop runs."""
    import kombu.utils.functional
    from kombu.utils.compat import detect_environment

    import greensched

    return {
        "socket_green_at_app_import": _AT_IMPORT["socket"] is not greensched.original("socket", "socket"),
        "sleep_green_at_app_import": _AT_IMPORT["sleep"] is not greensched.original("time", "sleep"),
        "kombu_retry_sleep_green": kombu.utils.functional.sleep is time.sleep,
        "kombu_environment": detect_environment(),
    }


@app.task
def threads() -> dict[str, Any]:
    """The worker's threads as `threading` lists them, and how many OS threads it has."""
    import sys
    import threading

    return {"names": sorted(t.name for t in threading.enumerate()),
            "os_threads": len(sys._current_frames())}


@app.task(acks_late=True)
def late_ack_sleep(seconds: float, marker: str) -> str:
    """acks_late: redelivered if the worker running it dies; records each start in redis.

    Only its first run waits ``seconds``; a redelivered run returns at once.
    """
    import redis

    runs = redis.Redis.from_url(BACKEND or BROKER).rpush(marker, str(os.getpid()))
    if runs == 1:
        time.sleep(seconds)
    return marker
