"""Where did the signal handler run? Classifying a landing as a safe point or not.

CPython runs a Python signal handler at the next place that checks for signals,
and passes it the innermost Python frame. The frame's current instruction says a
lot about that place (facts measured on 3.11; the same holds on 3.12 and 3.13,
whose instruction names this module looks up by name, not number):

* **Clean**: RESUME (a function's entry), JUMP_BACKWARD and the 3.11
  POP_JUMP_BACKWARD_IF_* family (a loop's back-edge). CPython's eval loop checked
  between two bytecodes; nothing of this frame is half-done in C.
* **A call**: CALL (or 3.11's PRECALL, which runs builtins itself). Either the
  callee has returned and the eval loop checked after it (safe), or the callee is
  still running and checked from inside its C code. The second is safe too, unless
  that C code holds state another green thread could trip over. In the stdlib that
  means buffered file objects (``_io`` checks signals after each raw write *while
  holding the buffer's lock*; a second green thread printing to the same stream
  gets ``RuntimeError: reentrant call``, where an OS thread would wait for the lock)
  and ``input()`` (holds the readline lock). So a call is classified by the
  *name* of its callee, read from the bytecode that loaded it: file-like names
  (``print``, ``write``, ``flush``, ``readline``...) are **unsafe**, except the bare
  system calls ``os.read``/``os.write`` & co. (no object, no lock); anything else is
  **safe**: ``time.monotonic()`` in a busy loop, ``hashlib`` updates, and the
  unpatched blocking calls that retry their syscall after EINTR (``time.sleep``,
  ``lock.acquire``, ``select.select``, an epoll object's ``poll``, socket calls),
  which hold nothing but their C stack. (A ``select.poll`` object's ``poll`` sets a
  "poll running" flag, and a second caller of the same object gets ``RuntimeError:
  concurrent poll() invocation``; so it does with OS threads: switching away adds no
  new failure, and ``poll`` was unsafe by name until an unpatched ``epoll.poll(30)``
  froze every other thread for its 30 s.) A name is a heuristic: an aliased writer
  (``w = f.write; w(x)``) or a C function that writes to a shared file by itself
  (``pickle.dump``) is not seen.
* **Unknown**: any other instruction (FOR_ITER over a file, an operator calling C
  code), or a call whose callee the bytecode does not reveal (arguments with
  jumps in them). Treated like unsafe, except that a thread seen stuck in the same
  unknown place for a whole slice is switched anyway (see `_preempt`).

Separately, `atomic_reason` answers whether greensched's own code or an import is
on the interrupted part of the stack: those are never preempted.

And `exception_escapes` answers whether an exception raised at the landing would
skip the ``try``/``with`` that covers the instruction just before it. CPython's
compiler ends a protected range before a loop's closing back-edge in some loops
(python/cpython#108214 on 3.11 and 3.12, #130279 on 3.13: ``while x: x += 1``
inside ``try`` on 3.13.0), so an exception raised by a signal handler at that
back-edge escapes the ``except`` and ``finally`` around the loop. KeyboardInterrupt
suffers from it in plain CPython; we must not make it worse, so an exception thrown
into a thread preempted at such a place (a kill, a `Timeout`) is held back until
the thread stands somewhere it is not (see `_preempt`). Where the only place a loop
checks for signals is such a back-edge (a tight loop inside ``try`` on 3.13), it
is raised there after a second anyway, and skips the handlers as Ctrl-C would.
"""

from __future__ import annotations

import dis
import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

__all__ = [
    "CLEAN", "SAFE_CALL", "UNSAFE", "UNKNOWN", "RUNTIME", "IMPORT", "classify", "atomic_reason",
    "exception_escapes", "mark_root",
]

CLEAN = "clean"
SAFE_CALL = "safe-call"
UNSAFE = "unsafe"
UNKNOWN = "unknown"
RUNTIME = "runtime"
IMPORT = "import"

_CLEAN_OPS = frozenset(
    dis.opmap[name]
    for name in ("RESUME", "JUMP_BACKWARD", "POP_JUMP_BACKWARD_IF_TRUE", "POP_JUMP_BACKWARD_IF_FALSE",
                 "POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE")
    if name in dis.opmap
)
_CALL_OPS = frozenset(dis.opmap[name] for name in ("CALL", "PRECALL", "CALL_KW") if name in dis.opmap)
#: The call's own prefix instructions, skipped when looking for its callee.
_CALL_PREFIX = frozenset(("PRECALL", "KW_NAMES", "CACHE", "EXTENDED_ARG"))
#: Instructions whose argument names the object they load.
_NAME_LOADS = frozenset(("LOAD_GLOBAL", "LOAD_NAME", "LOAD_ATTR", "LOAD_METHOD", "LOAD_FAST",
                         "LOAD_DEREF", "LOAD_CLASSDEREF", "LOAD_SUPER_ATTR", "LOAD_FAST_CHECK"))
#: Callees that may check for signals while holding per-object state (see the docstring).
_UNSAFE_NAMES = frozenset((
    "print", "input", "write", "writelines", "flush", "read", "read1", "readinto", "readinto1",
    "readline", "readlines", "readall", "peek", "seek", "tell", "truncate", "close", "detach",
    "next", "__next__", "dump", "writerow", "writerows",
))
#: ...except these, which are bare system calls on an fd: no object, no lock, just a
#: retry after EINTR (``os.read(pipe, n)`` waiting for a child that a green thread
#: has yet to start must be switched away from, or it waits forever).
_RAW_SYSCALLS = frozenset(
    f"{module}.{name}" for module in ("os", "posix")
    for name in ("read", "write", "readv", "writev", "pread", "pwrite", "close")
)

_IMPORT_FILES = frozenset(("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>"))
#: Code objects of greensched where a thread's own code begins (thread entry points).
_ROOT_CODES: set[CodeType] = set()

#: (code, instruction offset) -> classification of a call; bounded, see `_classify_call`.
_call_cache: dict[tuple[CodeType, int], str] = {}
#: (code, instruction offset) -> does an exception raised there escape its try?
_escape_cache: dict[tuple[CodeType, int], bool] = {}
_CACHE_MAX = 4096


def mark_root(fn: Callable[..., Any]) -> None:
    """Declare ``fn`` (a greensched function) an entry point that calls user code."""
    _ROOT_CODES.add(fn.__code__)


def classify(frame: FrameType) -> str:
    """CLEAN, SAFE_CALL, UNSAFE or UNKNOWN for the place ``frame`` stands on."""
    code = frame.f_code
    raw = code.co_code
    lasti = frame.f_lasti
    if not 0 <= lasti < len(raw):
        return UNKNOWN
    op = raw[lasti]
    if op in _CLEAN_OPS:
        return CLEAN
    if op in _CALL_OPS:
        key = (code, lasti)
        verdict = _call_cache.get(key)
        if verdict is None:
            verdict = _classify_call(code, lasti)
            if len(_call_cache) >= _CACHE_MAX:
                _call_cache.clear()  # code objects come and go; keep the cache small
            _call_cache[key] = verdict
        return verdict
    return UNKNOWN


def _classify_call(code: CodeType, lasti: int) -> str:
    name = callee_name(code, lasti, qualified=True)
    if name is None:
        return UNKNOWN
    if name in _RAW_SYSCALLS:
        return SAFE_CALL
    return UNSAFE if name.rpartition(".")[2] in _UNSAFE_NAMES else SAFE_CALL


def callee_name(code: CodeType, offset: int, qualified: bool = False) -> str | None:
    """The name of what the call at ``offset`` calls (``sleep`` in ``time.sleep(1)``).

    Walks back from the call over its arguments, adding up stack effects, until the
    arguments are accounted for; the instruction before them loaded the callee.
    Returns None when that is not straight-line code (a jump among the arguments).
    ``qualified``: an attribute of a global name comes with it (``time.sleep``).
    """
    instrs = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    at = next((n for n, i in enumerate(instrs) if i.offset == offset), None)
    if at is None:
        return None
    if instrs[at].opname == "PRECALL":  # 3.11: the CALL follows its PRECALL
        at += 1
        if at >= len(instrs) or instrs[at].opname != "CALL":
            return None
    argc = instrs[at].arg or 0
    if instrs[at].opname == "CALL_KW":  # 3.13: the keyword names tuple is on the stack too
        argc += 1
    j = at - 1
    while j >= 0 and instrs[j].opname in _CALL_PREFIX:
        j -= 1
    produced = 0
    while j >= 0:
        ins = instrs[j]
        if produced >= argc:  # the arguments are all accounted for: this loaded the callee
            if ins.opname == "PUSH_NULL":  # 3.13 pushes the NULL between callee and arguments
                j -= 1
                continue
            if ins.opname in _NAME_LOADS and isinstance(ins.argval, str):
                owner = instrs[j - 1] if j > 0 else None
                if (qualified and ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and owner is not None
                        and owner.opname in ("LOAD_GLOBAL", "LOAD_NAME")
                        and isinstance(owner.argval, str) and not ins.is_jump_target):
                    return f"{owner.argval}.{ins.argval}"
                return ins.argval
            return None
        if ins.is_jump_target or "JUMP" in ins.opname or ins.opname.startswith("FOR_ITER"):
            return None
        try:
            produced += dis.stack_effect(ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None)
        except ValueError:
            return None
        j -= 1
    return None


def atomic_reason(frame: FrameType | None) -> str | None:
    """Why the interrupted stack must not be preempted now, or None if it may be.

    RUNTIME: greensched's own code is on it (short: worth retrying at the next
    check). IMPORT: an import is in progress (may be long: wait for the next tick).
    A root (`mark_root`) is greensched code too: user code runs *below* it, so the
    interrupted frame being a root itself (e.g. at its entry, before its ``try``)
    is RUNTIME; an exception thrown in there would escape the thread's bootstrap.
    """
    innermost = frame
    while frame is not None:
        code = frame.f_code
        if code in _ROOT_CODES:
            return RUNTIME if frame is innermost else None
        if code.co_filename in _IMPORT_FILES:
            return IMPORT
        name = frame.f_globals.get("__name__")
        if name is not None and (name == "greensched" or name.startswith("greensched.")):
            return RUNTIME
        frame = frame.f_back
    return None


def exception_escapes(frame: FrameType) -> bool:
    """Would an exception raised where ``frame`` stands skip the handler of the instruction before?"""
    key = (frame.f_code, frame.f_lasti)
    escapes = _escape_cache.get(key)
    if escapes is None:
        escapes = _handler_changes_at(frame.f_code, frame.f_lasti)
        if len(_escape_cache) >= _CACHE_MAX:
            _escape_cache.clear()
        _escape_cache[key] = escapes
    return escapes


#: Measured: 3.11 and 3.12 check for signals at a backward jump *after* jumping, so
#: an exception raised there belongs to the loop's head, inside the loop's try; 3.13
#: checks before jumping, at an instruction the try's range may leave out (#130279).
_BACK_EDGE_CHECKS_BEFORE_JUMP = sys.version_info >= (3, 13)


def _handler_changes_at(code: CodeType, offset: int) -> bool:
    bytecode = dis.Bytecode(code)
    entries = getattr(bytecode, "exception_entries", ())  # 3.11+; none before
    previous = None
    for ins in bytecode:
        if ins.offset >= offset:
            if "JUMP_BACKWARD" in ins.opname and not _BACK_EDGE_CHECKS_BEFORE_JUMP:
                return False
            break
        previous = ins.offset
    if previous is None:
        return False

    def handler(at: int) -> int | None:
        for entry in entries:  # non-overlapping ranges, [start, end)
            if entry.start <= at < entry.end:
                return int(entry.target)
        return None

    return handler(previous) != handler(offset)
