"""The schedule fuzzer over patch_all()'d threading, queue and socket, in a fresh interpreter.

``python -m tests.fuzz.patched_program FIRST_SEED COUNT [WORKLOAD...]``: runs every
workload (or those named) under seeds FIRST_SEED .. FIRST_SEED+COUNT-1 with the
stdlib's own classes, patched green; prints ``ok RUNS`` or the failing seed and why.
"""

import greensched

greensched.patch_all()

import queue  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from tests.fuzz.workloads import WORKLOADS, run_one  # noqa: E402


class _Thread(threading.Thread):
    def __init__(self, target, args=()):
        super().__init__(target=target, args=args, daemon=True)


def patched_primitives() -> SimpleNamespace:
    return SimpleNamespace(
        Thread=_Thread, Lock=threading.Lock, RLock=threading.RLock, Condition=threading.Condition,
        Semaphore=threading.Semaphore, BoundedSemaphore=threading.BoundedSemaphore,
        Event=threading.Event, Queue=queue.Queue, LifoQueue=queue.LifoQueue,
        PriorityQueue=queue.PriorityQueue, SimpleQueue=queue.SimpleQueue, Empty=queue.Empty,
        sleep=time.sleep, socketpair=socket.socketpair,
    )


def main() -> None:
    first, count = int(sys.argv[1]), int(sys.argv[2])
    names = sys.argv[3:] or sorted(WORKLOADS)
    p = patched_primitives()
    runs = 0
    for name in names:
        for seed in range(first, first + count):
            try:
                run_one(name, seed, p)
            except BaseException:
                print(f"FAILED {name} seed {seed}")
                traceback.print_exc()
                sys.exit(1)
            runs += 1
    print(f"ok {runs}")


if __name__ == "__main__":
    main()
