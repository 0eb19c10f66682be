"""python -m greensched [options] (-m MODULE | -c CODE | script | -) [args ...]

Patches the stdlib with `greensched.patch_all()`, then runs an unmodified program
as ``__main__`` the way ``python`` itself would: the same ``sys.argv``, the same
``sys.path[0]``, the same ``__main__.__spec__``. Options go *before* the program;
everything after it (``-h``, ``--``, ``-x value``...) belongs to the program.
Options: ``--slice MS``, ``--granularity MS``, ``--no-preempt``, ``--dump-signal SIG`` (print every green
thread's stack on that signal) and ``--blocking-threshold MS`` (report a green
thread that holds the CPU longer); see ``--help``.

How ``python`` sets things up, and so how we do (checked against CPython 3.11-3.13):

========================  ======================  ======================  ===========
program                   ``sys.argv[0]``         ``sys.path[0]``         ``__spec__``
========================  ======================  ======================  ===========
``script.py``             ``script.py`` as typed  the script's folder     None
                                                  (symlinks resolved)
``dir`` or ``app.zip``    as typed                the folder or zip       ``__main__``
``-m pkg.mod``            the module's file       the current folder      ``pkg.mod``
``-c CODE``               ``-c``                  ``''``                  None
``-`` (stdin)             ``-``                   ``''``                  None
========================  ======================  ======================  ===========

With ``python -P`` (``sys.flags.safe_path``) nothing is put in front of ``sys.path``.
A program that cannot be found is one line on stderr and exit status 2, with
CPython's own wording (``python`` exits 1 for a missing module, 2 for a missing
script; a launcher that could not start the program is a usage error, so 2 for both).
"""

from __future__ import annotations

import argparse
import builtins
import importlib.machinery
import importlib.util
import io
import os
import runpy
import sys
import types
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from ._core._preempt import check_granularity_ms, check_slice_ms, mark_root
from .monitor import set_dump_signal_from, start_blocking_detector_ms
from .monkey import patch_all
from .scheduler import get_preemption, set_preemption

__all__ = ["main"]

PROG = "python -m greensched"

#: Our options that take a value (``--slice 5`` or ``--slice=5``): needed to find where
#: the program starts, before argparse sees anything.
_VALUED = frozenset({"--slice", "--granularity", "--dump-signal", "--blocking-threshold"})


class _Program:
    """What to run: ``kind`` is "module", "code", "stdin" or "path"; ``args`` are its own."""

    def __init__(self, kind: str, what: str, args: list[str]) -> None:
        self.kind, self.what, self.args = kind, what, args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [options] (-m MODULE | -c CODE | script | -) [args ...]",
        description="Run a plain blocking Python program on preemptive green threads: "
        "patch the stdlib (sockets, time.sleep, select, threading...), then run the "
        "program as python would. Options come before the program; everything after "
        "it is the program's own (-h included).",
        allow_abbrev=False,  # _split must know every spelling of an option that takes a value
    )
    parser.add_argument("--slice", metavar="MS", default=None,
                        help="preemption time slice in milliseconds (default 10, or GREENSCHED_SLICE_MS)")
    parser.add_argument("--granularity", metavar="MS", default=None,
                        help="how long a thread runs before a sleeper that fell due or a ready socket "
                        "preempts it, in milliseconds (default 1, or GREENSCHED_GRANULARITY_MS)")
    parser.add_argument("--no-preempt", action="store_true",
                        help="turn preemption off (as GREENSCHED_PREEMPT=0 does)")
    parser.add_argument("--dump-signal", metavar="SIG", default=None,
                        help="print every green thread's stack to stderr on this signal, e.g. SIGUSR1 "
                        "(as GREENSCHED_DUMP_SIGNAL does); then: kill -USR1 <pid>")
    parser.add_argument("--blocking-threshold", metavar="MS", default=None,
                        help="report a green thread that holds the CPU longer than MS milliseconds "
                        "without a switch, with its stack (as GREENSCHED_BLOCKING_THRESHOLD_MS does)")
    parser.add_argument("--version", action="version", version=f"greensched {__version__}")
    # Shown in --help only; _split takes these out before argparse parses the rest.
    parser.add_argument("-m", dest="_m", metavar="MODULE", help="run a library module as a script, "
                        "like python -m (the rest of the command line is its sys.argv[1:])")
    parser.add_argument("-c", dest="_c", metavar="CODE", help="run CODE, like python -c")
    return parser


def _split(argv: Sequence[str], parser: argparse.ArgumentParser) -> tuple[list[str], _Program | None]:
    """Cut ``argv`` where the program starts: (our options, the program or None).

    argparse cannot do this: it would take the program's ``-h`` or ``-x`` for ours
    (``argparse.REMAINDER`` does not stop at an option it does not know).
    """
    ours: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-m", "-c"):
            if i + 1 >= len(argv):
                parser.error(f"argument expected for the {arg} option")
            kind = "module" if arg == "-m" else "code"
            return ours, _Program(kind, argv[i + 1], list(argv[i + 2:]))
        if arg.startswith(("-m", "-c")) and not arg.startswith("--"):  # -mtimeit, as python takes it
            kind = "module" if arg[1] == "m" else "code"
            return ours, _Program(kind, arg[2:], list(argv[i + 1:]))
        if arg == "-":
            return ours, _Program("stdin", "-", list(argv[i + 1:]))
        if arg == "--":  # ends our options; the next word is the script
            if i + 1 >= len(argv):
                return ours, None
            return ours, _Program("path", argv[i + 1], list(argv[i + 2:]))
        if not arg.startswith("-"):
            return ours, _Program("path", arg, list(argv[i + 1:]))
        ours.append(arg)
        if arg in _VALUED and i + 1 < len(argv):
            ours.append(argv[i + 1])
            i += 1
        i += 1
    return ours, None


def main(argv: Sequence[str] | None = None) -> None:
    """Parse our options, patch, and run the program in this interpreter."""
    parser = _parser()
    ours, program = _split(sys.argv[1:] if argv is None else argv, parser)
    options = parser.parse_args(ours)
    if program is None:
        parser.error("give the program to run: a script, -m MODULE, -c CODE or - (stdin)")
    try:
        # The environment's settings first (GREENSCHED_SLICE_MS=fast fails here, in one
        # line), then the options, which override them; each error names its setting.
        get_preemption()
        if options.no_preempt or options.slice is not None or options.granularity is not None:
            slice_ms = None if options.slice is None else check_slice_ms(options.slice, "--slice")
            granularity_ms = (None if options.granularity is None
                              else check_granularity_ms(options.granularity, "--granularity"))
            set_preemption(False if options.no_preempt else None, slice_ms, granularity_ms)
        if options.dump_signal is not None:
            set_dump_signal_from(options.dump_signal, "--dump-signal")
        if options.blocking_threshold is not None:
            start_blocking_detector_ms(options.blocking_threshold, "--blocking-threshold")
    except ValueError as exc:
        parser.error(str(exc))
    patch_all()  # before the program is looked for: finding pkg.mod imports pkg
    if program.kind == "module":
        _check_module(program.what)
    elif program.kind == "path":
        _check_path(program.what)
    try:
        _run(program)
    except Exception as exc:  # SystemExit and KeyboardInterrupt go on as python's do
        # As python does: the hook prints the traceback, the status is 1. The frames of
        # this launcher and of runpy are left out: the traceback starts at the program.
        tb = exc.__traceback__
        while tb is not None and _launcher_frame(tb.tb_frame):
            tb = tb.tb_next
        # The hook prints exc.__traceback__ when it has one, whatever tb it is given.
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        sys.exit(1)


def _launcher_frame(frame: types.FrameType) -> bool:
    """Is ``frame`` this module's or runpy's (above the program in a traceback)?"""
    return frame.f_globals is globals() or frame.f_globals.get("__name__") == "runpy"


def _cannot_run(message: str) -> NoReturn:
    """One line on stderr and exit status 2, as ``python nosuch.py`` does."""
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(2)


def _check_module(name: str) -> None:
    """Refuse, in CPython's words, a module that ``python -m`` could not run."""
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:  # importing a parent package failed, or a bad name
        _cannot_run(f"Error while finding module specification for {name!r} "
                    f"({type(exc).__name__}: {exc})")
    if spec is None:
        _cannot_run(f"No module named {name}")
    if spec.submodule_search_locations is not None:  # a package: python runs its __main__
        if name == "__main__" or name.endswith(".__main__"):
            _cannot_run("Cannot use package as __main__ module")
        try:
            main_spec = importlib.util.find_spec(name + ".__main__")
        except Exception as exc:
            _cannot_run(f"Error while finding module specification for {name + '.__main__'!r} "
                        f"({type(exc).__name__}: {exc})")
        if main_spec is None:
            _cannot_run(f"No module named {name}.__main__; {name!r} is a package and "
                        f"cannot be directly executed")


def _check_path(path: str) -> None:
    """Refuse, in CPython's words, a script, folder or zip that ``python`` could not open."""
    full = _absolute(path)
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, "__main__" + suffix))
                   for suffix in importlib.machinery.all_suffixes()):
            _cannot_run(f"can't find '__main__' module in {full!r}")
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        _cannot_run(f"can't open file {full!r}: [Errno {exc.errno}] {exc.strerror}")


def _absolute(path: str) -> str:
    """``path`` made absolute as python does for ``__file__``: joined, not normalised."""
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


def _set_path0(entry: str | None) -> None:
    """Put ``entry`` where ``python`` would, in place of ours; None: take ours out.

    We were started as ``python -m greensched``, so ``sys.path[0]`` is the current
    folder, put there for us; the program gets its own instead. Under ``python -P``
    nothing was put there (``sys.path[0]`` is the stdlib), and nothing is.
    """
    if sys.flags.safe_path:
        return
    if entry is None:
        del sys.path[0]
    else:
        sys.path[0] = entry


def _run(program: _Program) -> None:
    """Run the program; its frames sit below this one, so this is a preemption root."""
    if program.kind == "module":
        sys.argv = [program.what] + program.args  # runpy puts the module's file in argv[0]
        _set_path0(os.getcwd())
        runpy.run_module(program.what, run_name="__main__", alter_sys=True)
    elif program.kind == "path":
        sys.argv = [program.what] + program.args
        if os.path.isfile(program.what) and not _is_zip(program.what):
            # As `python script.py` does: the script's own folder, symlinks resolved.
            _set_path0(os.path.dirname(os.path.realpath(program.what)))
            if not program.what.endswith((".pyc", ".pyo")):
                # Not runpy.run_path: it makes __file__ the path as typed, where python
                # makes it absolute (argv[0] stays as typed, as it does here).
                full = _absolute(program.what)
                with io.open_code(full) as file:
                    source = file.read()
                _exec_as_main(source, full, file=full,
                              loader=importlib.machinery.SourceFileLoader("__main__", full))
                return
        else:
            # A folder or zip with a __main__.py: runpy puts it first on sys.path itself
            # (as typed; python makes it absolute) and runs its __main__ module.
            _set_path0(None)
        runpy.run_path(program.what, run_name="__main__")
    else:
        sys.argv = [program.what if program.kind == "stdin" else "-c"] + program.args
        _set_path0("")
        if program.kind == "stdin":  # python names the file "<stdin>", -c code has none
            _exec_as_main(sys.stdin.read(), "<stdin>", file="<stdin>")
        else:
            _exec_as_main(program.what, "<string>")


def _is_zip(path: str) -> bool:
    import zipfile  # only for this check
    return zipfile.is_zipfile(path)


def _exec_as_main(source: str | bytes, filename: str, file: str | None = None,
                  loader: Any = importlib.machinery.BuiltinImporter) -> None:
    """Run ``source`` as ``python`` runs a script (``file``) or ``-c`` code: no spec."""
    module = types.ModuleType("__main__")
    module.__dict__.update(__builtins__=builtins, __spec__=None, __loader__=loader)
    if file is not None:
        module.__dict__["__file__"] = file
    if loader is not importlib.machinery.BuiltinImporter:
        module.__dict__["__cached__"] = None
    code = compile(source, filename, "exec")
    # As runpy does for scripts and modules: the program's module is sys.modules["__main__"]
    # while it runs (pickle, multiprocessing and doctest look there); ours afterwards.
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(code, module.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


mark_root(_run)
mark_root(_exec_as_main)

if __name__ == "__main__":
    main()
