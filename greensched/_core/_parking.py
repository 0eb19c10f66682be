"""The park protocol: how a green thread waits, and how whoever wakes it finds it.

Every wait in greensched (a wait queue, an fd, a sleep, a timer, the thread pool, an
asyncio loop's selector) is the same three steps, all on the hub (`_hub.Hub`):

1. ``token = hub.prepare_park()`` — the running thread takes a *park token* for the
   park it is about to make, and hands copies of it to whatever will wake it: a wait
   queue entry, the netpoller, a timer, a job on another OS thread.
2. ``hub.park(token, reason, timeout)`` — it switches to the hub until woken.
3. ``hub.unpark(token, value)`` — a waker makes it ready and hands it ``value``;
   `park` returns that value (or `TIMED_OUT`).

Why a token, and not the thread itself: a thread parks many times, and the things it
handed a wake-up to outlive the park they were for. A wait queue still holds the
entry of a waiter that timed out; a netpoller may report an fd ready in the same
pass in which a timeout already woke the thread; a pool job finishes after a
`Timeout` interrupted its caller, who by then waits on something else. Waking "the
thread" in any of these would end an unrelated, later wait: a spurious wake-up, or,
since the value is consumed, a lost one.

A token names one park. It is ``(thread, number)``, where the number counts the
thread's parks; `unpark` wakes the thread only while it is parked in *that* park,
so a stale token is ignored by construction and `unpark` says so by returning False
(a wait queue then hands its value to the next waiter). The number is taken by
`prepare_park`, not by `park`: a token is valid for exactly one park, even one that
returns at once (``timeout <= 0``), and two tokens never name the same park. Only
the hub reads or changes the number; everyone else treats a token as opaque and
compares nothing but identity.

Exceptions travel outside this protocol: `Hub.throw` (a kill, a `Timeout`) makes a
parked thread ready whatever its token, and after it every earlier token is stale.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["ParkToken", "Parker", "TIMED_OUT"]

#: ``(thread, park number)``; opaque outside the hub (see the module docstring). A plain
#: tuple, as one is made per wait: on 3.11 making one takes 19 ns, an instance of a
#: two-slot class 77 ns (timeit, this machine, 2026-12-05).
ParkToken = tuple[Any, int]


class _TimedOut:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TIMED_OUT"

    def __bool__(self) -> bool:
        return False


#: Returned by `Hub.park` (and `WaitQueue.park`) when the timeout ran out.
TIMED_OUT: Any = _TimedOut()


class Parker(Protocol):
    """What a waiter needs of the hub: the protocol above. `Hub` is the one implementation."""

    #: The OS thread whose green threads may park and be woken here.
    os_thread_id: int

    def prepare_park(self) -> ParkToken:
        """A token for the running thread's next park; `HubError` where none can park."""
        ...

    def park(self, token: ParkToken, reason: str, timeout: float | None = None) -> Any:
        """Wait until ``unpark(token, value)`` (returns ``value``) or `TIMED_OUT`."""
        ...

    def unpark(self, token: ParkToken, value: Any = True, now: float | None = None) -> bool:
        """Wake the park ``token`` names with ``value``; False if it is over (stale)."""
        ...

    def take_dropped_value(self, token: ParkToken) -> Any:
        """After `park` raised: what the park had been handed, or `TIMED_OUT`."""
        ...
