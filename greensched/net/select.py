"""Green `select` and `selectors`: waiting on many fds parks the green thread.

``select(rlist, wlist, xlist, timeout=None)``, ``poll()`` and the selectors
(``GreenSelector``, also ``DefaultSelector`` and ``PollSelector``, and
``GreenSelectSelector``, also ``SelectSelector``) keep the stdlib's signatures,
return values and exceptions. Each one works the same way:

1. Ask the ORIGINAL ``select.select`` / ``select.poll`` (captured when this module
   is imported) with a zero timeout. That call does all the argument checking and
   computes the answer, so errors and results are the stdlib's own.
2. If nothing is ready and the timeout allows, park in `Hub.wait_fds`, which
   watches every fd through the hub's netpoller without taking anything away from
   other waiters (many green threads may select on one fd; a green socket may be
   reading it at the same time); other green threads run meanwhile.
3. When woken (an fd is ready, the timeout passed, a watched fd was closed), repeat
   step 1, and return its answer; park again if another green thread consumed the
   readiness first, until the timeout is used up.

What the netpoller can watch is readable and writable (hang-ups and errors wake
both). The other conditions are noticed this way:

* ``select``'s ``xlist`` ("exceptional conditions": POLLPRI, e.g. TCP urgent data)
  and ``poll`` events other than POLLIN/POLLRDNORM/POLLOUT/POLLWRNORM: an fd that
  is also watched for reading or writing (``select(socks, [], socks)``, the common
  ``POLLIN | POLLPRI`` mask) is woken by that watch; an fd watched *only* for such
  conditions (or registered with an empty mask, which still reports POLLHUP/POLLERR)
  is re-checked periodically while the call waits, every 1 ms at first, backing off
  to every 50 ms. Not noticed until then: urgent data alone (one ``MSG_OOB`` byte
  and nothing else) on an fd that is watched for reading too.
* When the watched fds keep waking the call (8 times in a row) while the real check
  finds nothing and no other green thread ran in between (an fd epoll and poll
  disagree on, e.g. an eventfd polled for POLLRDNORM only; or another process that
  keeps taking the readiness first), they are no longer watched for the rest of the
  call but re-checked periodically instead: slower, never a busy loop.

Not like the stdlib, by design or necessity:

* ``DefaultSelector`` is poll-based here (``select.epoll`` is not green): like
  ``PollSelector`` it accepts regular files (always ready) where ``EpollSelector``
  raises `PermissionError`, reports a registered fd that was closed as ready
  (POLLNVAL) where epoll silently forgets it, and has no ``fileno()``. Its class
  is named ``GreenSelector`` (CPython's test_selectors skips a mock-based test
  by class name). Each wait that parks registers every fd with the netpoller and
  unregisters it after: about 10 us per fd here (a parked wait on 500 fds costs
  ~5 ms), fine for the usual handful of fds, slow for selectors of thousands.
* ``fileno()`` of the objects given to ``select`` is called again when the call
  parks (the stdlib calls it once per call).
* Registrations made while a ``poll()`` or ``selector.select()`` is parked take
  effect at its next check (the stdlib's take effect at the next call).
* The poll object's methods are positional-only as in the stdlib, but passing a
  keyword raises `TypeError` with Python's wording, not the C one.
* Called from a hub callback, a call that would have to wait raises `HubError`.
* ``select.epoll``, ``select.devpoll`` and ``select.kqueue`` are not replaced: code
  that uses them directly still blocks its OS thread.

Nothing here patches anything: the monkey layer installs the names listed in
``__implements_select__`` into `select` and those in ``__implements_selectors__``
into `selectors`.
"""

from __future__ import annotations

import errno
import math
import operator
import select as _stdlib_select
import selectors as _stdlib_selectors
from collections.abc import Callable
from time import monotonic
from typing import Any

from .._core._hub import clock_now, get_hub

__all__ = [
    "select", "poll", "GreenSelector", "GreenSelectSelector", "DefaultSelector",
    "PollSelector", "SelectSelector",
]

#: What the monkey layer installs into `select` and into `selectors`.
__implements_select__ = ["select", "poll"]
__implements_selectors__ = ["DefaultSelector", "PollSelector", "SelectSelector"]


def _unwrap(obj: Any) -> Any:
    """The stdlib original behind ``obj`` if it is one of ours (imported after patching)."""
    return getattr(obj, "__greensched_original__", obj)


#: The ORIGINAL, OS-thread-blocking functions, captured at import.
_original_select: Callable[..., Any] = _unwrap(_stdlib_select.select)
_original_poll: Callable[[], Any] | None = _unwrap(getattr(_stdlib_select, "poll", None))

#: Periodic re-checks (see the module docstring): the first interval and the cap.
_RECHECK_FIRST = 0.001
_RECHECK_MAX = 0.05
#: Wakes in a row that found nothing ready although no other green thread ran (or
#: within _SPURIOUS_FAST seconds of parking), after which the fds are no longer
#: watched but re-checked periodically.
_SPURIOUS_LIMIT = 8
_SPURIOUS_FAST = 0.001

_INT64_MAX = 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


# -- the one waiting loop ----------------------------------------------------------------


def _park_until_ready(
    check: Callable[[], Any],
    watch: Callable[[], tuple[list[int], list[int], bool]],
    seconds: float | None,
) -> Any:
    """Park until ``check()`` (a zero-timeout real poll) returns something, or time is up.

    ``watch()`` says what to watch now: (readers, writers, needs periodic re-checks).
    Returns ``check()``'s answer, or None when ``seconds`` (None: forever) ran out.
    """
    hub = get_hub()
    deadline = None if seconds is None else clock_now() + seconds
    interval = _RECHECK_FIRST
    spurious = 0
    degraded = False
    while True:
        readers, writers, recheck = watch()
        if degraded:
            readers, writers, recheck = [], [], True
        if deadline is None:
            park: float | None = None
        else:
            park = deadline - clock_now()
            if park <= 0:
                return None
        if recheck:
            park = interval if park is None else min(park, interval)
            interval = min(interval * 2, _RECHECK_MAX)
        started = monotonic()
        switches = hub.switches
        try:
            woke = hub.wait_fds(readers, writers, park)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            woke = True  # a watched fd was closed: the real check says what the stdlib would
        ready = check()
        if ready is not None:
            return ready
        # Woken for nothing. If no other green thread ran meanwhile (only our own
        # resume was counted), or it came at once, nobody took the readiness from us.
        if woke and (hub.switches - switches <= 1 or monotonic() - started < _SPURIOUS_FAST):
            spurious += 1
            if spurious >= _SPURIOUS_LIMIT:
                degraded = True
        else:
            spurious = 0


def _fileno(obj: Any) -> int:
    """The fd of an object the original select/poll already accepted."""
    return int(obj if isinstance(obj, int) else obj.fileno())


# -- select.select -------------------------------------------------------------------------


def _select_seconds(timeout: Any) -> float | None:
    """``select``'s timeout in seconds (None: forever), checked exactly as the stdlib does.

    Valid values are recognised here; for anything else the original ``select`` is
    called with no fds and that timeout, so it raises its own error (TypeError,
    ValueError for negative or NaN, OverflowError...) with its own message.
    """
    if timeout is None:
        return None
    if isinstance(timeout, float):
        d = float(timeout)
        if d >= 0 and d * 1e9 < 2.0**63:  # NaN fails both; C rounds to ns the same way
            return d
    else:
        try:
            v = operator.index(timeout)
        except TypeError:
            pass
        else:
            if 0 <= v <= _INT64_MAX // 10**9:
                return float(v)
    _original_select([], [], [], timeout)
    raise ValueError("timeout must be non-negative")  # not reached: the call above raised


def _sequence(obj: Any) -> Any:
    """What ``PySequence_Fast(obj, "arguments 1-3 must be sequences")`` gives ``select``."""
    if type(obj) is list or type(obj) is tuple:
        return obj
    try:
        it = iter(obj)
    except TypeError:
        it = None
    if it is None:
        raise TypeError("arguments 1-3 must be sequences")
    return list(it)


def _pick(objs: list[Any], fds: list[int], ready: list[int]) -> list[Any]:
    """The objects whose fd is ready, in the caller's order, duplicates kept (as select does)."""
    if not ready:
        return []
    ready_set = set(ready)
    # Not strict: a fileno() that shortens the caller's list leaves fewer fds than objects (as in the
    # stdlib, whose loop stops early too).
    return [obj for obj, fd in zip(objs, fds, strict=False) if fd in ready_set]


def select(rlist: Any, wlist: Any, xlist: Any, timeout: Any = None,
           /) -> tuple[list[Any], list[Any], list[Any]]:
    seconds = _select_seconds(timeout)
    rlist = _sequence(rlist)
    wlist = _sequence(wlist)
    xlist = _sequence(xlist)
    ready = _original_select(rlist, wlist, xlist, 0)
    if ready[0] or ready[1] or ready[2] or seconds == 0:
        return ready  # type: ignore[no-any-return]  # the original select's result is Any here
    robjs, wobjs, xobjs = list(rlist), list(wlist), list(xlist)
    rfds = [_fileno(o) for o in robjs]
    wfds = [_fileno(o) for o in wobjs]
    xfds = [_fileno(o) for o in xobjs]
    watched = set(rfds).union(wfds)
    # An fd watched only for exceptional conditions: the netpoller cannot see those.
    recheck = any(fd not in watched for fd in xfds)

    def check() -> tuple[list[Any], list[Any], list[Any]] | None:
        r, w, x = _original_select(rfds, wfds, xfds, 0)
        if not (r or w or x):
            return None
        return _pick(robjs, rfds, r), _pick(wobjs, wfds, w), _pick(xobjs, xfds, x)

    result = _park_until_ready(check, lambda: (rfds, wfds, recheck), seconds)
    return result if result is not None else ([], [], [])


select.__doc__ = (_original_select.__doc__ or "") + """

greensched: the calling green thread parks while it waits; the others run.
"""
select.__greensched_original__ = _original_select  # type: ignore[attr-defined]  # our marker on a function


# -- select.poll ---------------------------------------------------------------------------

_POLLIN = getattr(_stdlib_select, "POLLIN", 1)
_POLLPRI = getattr(_stdlib_select, "POLLPRI", 2)
_POLLOUT = getattr(_stdlib_select, "POLLOUT", 4)
#: Events the netpoller's read watch reports as they are; likewise for write.
_READ_EVENTS = _POLLIN | getattr(_stdlib_select, "POLLRDNORM", 0)
_WRITE_EVENTS = _POLLOUT | getattr(_stdlib_select, "POLLWRNORM", 0)


def _poll_ms(timeout: Any) -> int | None:
    """``poll``'s timeout in whole ms (None: forever), checked exactly as the stdlib does.

    As in CPython: rounded away from zero to milliseconds; any negative value means
    forever. Invalid values are handed to an empty original poll object to raise
    the stdlib's own error.
    """
    if timeout is None:
        return None
    ns: int | None = None
    if isinstance(timeout, float):
        x = float(timeout) * 1e6
        if -(2.0**63) <= x < 2.0**63:  # NaN fails
            ns = math.ceil(x) if x >= 0 else math.floor(x)
    else:
        try:
            v = operator.index(timeout)
        except TypeError:
            pass
        else:
            if -(2**63) <= v * 10**6 <= _INT64_MAX:
                ns = v * 10**6
    if ns is not None:
        ms = -(-ns // 10**6) if ns >= 0 else ns // 10**6
        if _INT_MIN <= ms <= _INT_MAX:
            return None if ms < 0 else ms
    assert _original_poll is not None
    _original_poll().poll(timeout)
    raise OverflowError("timeout is too large")  # not reached: the call above raised


class _GreenPoll:
    """A polling object like ``select.poll()``'s, whose ``poll()`` parks the green thread."""

    __slots__ = ("_poll", "_masks", "_running", "__weakref__")

    def __new__(cls, *args: Any, **kwargs: Any) -> _GreenPoll:
        # Like the stdlib's type: made by poll() only.
        raise TypeError(f"cannot create '{cls.__module__}.{cls.__qualname__}' instances")

    def _setup(self) -> None:
        assert _original_poll is not None
        #: The original poll object: it checks arguments and computes readiness.
        self._poll = _original_poll()
        #: fd -> event mask, the same registrations as ``_poll``'s.
        self._masks: dict[int, int] = {}
        self._running = False

    def register(self, fd: Any, eventmask: int = _POLLIN | _POLLPRI | _POLLOUT, /) -> None:
        """Register a file descriptor with the polling object.

        fd
          either an integer, or an object with a fileno() method returning an int
        eventmask
          an optional bitmask describing the type of events to check for
        """
        self._poll.register(fd, eventmask)
        self._masks[_fileno(fd)] = operator.index(eventmask)

    def modify(self, fd: Any, eventmask: int, /) -> None:
        """Modify an already registered file descriptor.

        fd
          either an integer, or an object with a fileno() method returning
          an int
        eventmask
          a bitmask describing the type of events to check for
        """
        self._poll.modify(fd, eventmask)
        self._masks[_fileno(fd)] = operator.index(eventmask)

    def unregister(self, fd: Any, /) -> None:
        """Remove a file descriptor being tracked by the polling object."""
        self._poll.unregister(fd)
        self._masks.pop(_fileno(fd), None)

    def poll(self, timeout: Any = None, /) -> list[tuple[int, int]]:
        """Polls the set of registered file descriptors.

        The timeout is in milliseconds; None or a negative value waits forever.
        Returns a list containing any descriptors that have events or errors to
        report, as a list of (fd, event) 2-tuples. greensched: the calling green
        thread parks while it waits; the others run.
        """
        ms = _poll_ms(timeout)
        if self._running:
            raise RuntimeError("concurrent poll() invocation")
        self._running = True
        try:
            ready: list[tuple[int, int]] = self._poll.poll(0)
            if ready or ms == 0:
                return ready
            result = _park_until_ready(
                lambda: self._poll.poll(0) or None,
                self._watch,
                None if ms is None else ms / 1000.0,
            )
            return result if result is not None else []
        finally:
            self._running = False

    def _watch(self) -> tuple[list[int], list[int], bool]:
        readers: list[int] = []
        writers: list[int] = []
        recheck = False
        for fd, mask in list(self._masks.items()):  # another OS thread may register meanwhile
            if mask & _READ_EVENTS:
                readers.append(fd)
            if mask & _WRITE_EVENTS:
                writers.append(fd)
            if not mask & (_READ_EVENTS | _WRITE_EVENTS):
                recheck = True  # POLLPRI, POLLRDHUP... alone, or only POLLERR/POLLHUP
        return readers, writers, recheck


def poll() -> _GreenPoll:
    obj = object.__new__(_GreenPoll)
    obj._setup()
    return obj


poll.__doc__ = (getattr(_original_poll, "__doc__", None) or "") + """

greensched: the object's poll() parks the calling green thread while it waits.
"""
poll.__greensched_original__ = _original_poll  # type: ignore[attr-defined]  # our marker on a function


# -- selectors -----------------------------------------------------------------------------


class _GreenSelectorMixin:
    """``select()`` parks via `Hub.wait_fds`, then asks the stdlib parent with timeout 0."""

    _fd_to_key: dict[int, _stdlib_selectors.SelectorKey]

    def _green_seconds(self, timeout: Any) -> float | None:
        raise NotImplementedError

    def select(self, timeout: float | None = None) -> list[tuple[_stdlib_selectors.SelectorKey, int]]:
        """Wait until some registered file objects become ready, or the timeout expires.

        As `selectors.BaseSelector.select`: ``timeout`` None waits forever, <= 0
        does not wait; returns a list of (key, events) for the ready file objects.
        greensched: the calling green thread parks while it waits; the others run.
        """
        seconds = self._green_seconds(timeout)
        parent = super()
        # A mixin: super() is the stdlib selector it is mixed into, which mypy cannot know here.
        ready: list[tuple[_stdlib_selectors.SelectorKey, int]] = parent.select(0)  # type: ignore[attr-defined]
        if ready or seconds == 0:
            return ready
        result = _park_until_ready(
            # The mixin's super(), as above.
            lambda: parent.select(0) or None, self._green_watch, seconds  # type: ignore[attr-defined]
        )
        return result if result is not None else []

    def _green_watch(self) -> tuple[list[int], list[int], bool]:
        readers: list[int] = []
        writers: list[int] = []
        for fd, key in list(self._fd_to_key.items()):  # another OS thread may register meanwhile
            if key.events & _stdlib_selectors.EVENT_READ:
                readers.append(fd)
            if key.events & _stdlib_selectors.EVENT_WRITE:
                writers.append(fd)
        return readers, writers, False


class GreenSelectSelector(_GreenSelectorMixin, _stdlib_selectors.SelectSelector):
    """`selectors.SelectSelector` whose ``select()`` parks the green thread."""

    _select = staticmethod(_original_select)

    def _green_seconds(self, timeout: Any) -> float | None:
        # SelectSelector.select: ``None if timeout is None else max(timeout, 0)``.
        return _select_seconds(None if timeout is None else max(timeout, 0))


if _original_poll is not None:

    class GreenSelector(_GreenSelectorMixin, _stdlib_selectors.PollSelector):
        """A poll-based selector whose ``select()`` parks the green thread.

        The stdlib's `selectors.PollSelector` bookkeeping (register, modify,
        unregister, get_key, get_map, close and their errors) unchanged.
        """

        # Not None (the `if` above), but mypy does not carry the narrowing into a class body.
        _selector_cls = staticmethod(_original_poll)  # type: ignore[arg-type]

        def _green_seconds(self, timeout: Any) -> float | None:
            # PollSelector.select: None; <= 0 is 0; else whole ms, rounded up.
            if timeout is None:
                return None
            if timeout <= 0:
                return 0.0
            ms: int = math.ceil(timeout * 1e3)
            if ms > _INT_MAX:
                assert _original_poll is not None
                _original_poll().poll(ms)  # raises the stdlib's OverflowError
            return ms / 1e3

else:  # pragma: no cover - every supported platform has poll()
    # The other class under the same name: the one a platform without poll() can have.
    GreenSelector = GreenSelectSelector  # type: ignore[misc,assignment]


DefaultSelector = GreenSelector
PollSelector = GreenSelector
SelectSelector = GreenSelectSelector
