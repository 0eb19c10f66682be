"""python -m greensched [options] script.py [args...] | -m module [args...]

Patches the stdlib with `greensched.patch_all()`, then runs an unmodified program
as ``__main__``, with its own ``sys.argv``, the way ``python script.py`` would.
Options: ``--slice MS``, ``--no-preempt``, ``--dump-signal SIG`` (print every green
thread's stack on that signal) and ``--blocking-threshold MS`` (report a green
thread that holds the CPU longer); see ``--help``.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from typing import Optional

from ._core._preempt import mark_root
from .monitor import set_dump_signal_from, start_blocking_detector_ms
from .monkey import patch_all
from .scheduler import set_preemption


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m greensched",
        description="Run a plain blocking Python program on preemptive green threads: "
        "patch the stdlib (sockets, time.sleep, select...), then run the program.",
    )
    parser.add_argument("--slice", type=float, metavar="MS", default=None,
                        help="preemption time slice in milliseconds (default 10, or GREENSCHED_SLICE_MS)")
    parser.add_argument("--no-preempt", action="store_true",
                        help="turn preemption off (as GREENSCHED_PREEMPT=0 does)")
    parser.add_argument("--dump-signal", metavar="SIG", default=None,
                        help="print every green thread's stack to stderr on this signal, e.g. SIGUSR1 "
                        "(as GREENSCHED_DUMP_SIGNAL does); then: kill -USR1 <pid>")
    parser.add_argument("--blocking-threshold", metavar="MS", default=None,
                        help="report a green thread that holds the CPU longer than MS milliseconds "
                        "without a switch, with its stack (as GREENSCHED_BLOCKING_THRESHOLD_MS does)")
    parser.add_argument("-m", dest="module", metavar="MODULE", default=None,
                        help="run a library module as a script, like python -m")
    parser.add_argument("target", nargs="?", help="the script to run (unless -m is given)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the program")
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    """Parse our options, patch, and run the program in this interpreter."""
    parser = _parser()
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if options.module is None and options.target is None:
        parser.error("give a script to run, or -m MODULE")
    if options.no_preempt or options.slice is not None:
        try:
            set_preemption(False if options.no_preempt else None, options.slice)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        if options.dump_signal is not None:
            set_dump_signal_from(options.dump_signal, "--dump-signal")
        if options.blocking_threshold is not None:
            start_blocking_detector_ms(options.blocking_threshold, "--blocking-threshold")
    except ValueError as exc:
        parser.error(str(exc))
    patch_all()
    _run(options.module, options.target, options.args)


def _run(module: Optional[str], target: Optional[str], args: list[str]) -> None:
    """Run the program; its frames sit below this one, so this is a preemption root."""
    if module is not None:
        rest = ([target] if target is not None else []) + args
        sys.argv = [module] + rest
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        assert target is not None
        sys.argv = [target] + args
        # As `python script.py` does: the script's folder, not ours, comes first on the path.
        sys.path[0] = os.path.dirname(os.path.abspath(target))
        runpy.run_path(target, run_name="__main__")


mark_root(_run)

if __name__ == "__main__":
    main()
