"""One benchmark run in a fresh process: ``worker.py RUNTIME WORKLOAD [--quick] [--params=JSON]``.

Patches the runtime's stdlib first (before importing anything that uses
``threading`` or ``socket``), then imports and runs the workload, and prints one
line ``BENCH-RESULT {json}`` with its figures on stdout. The nginx base URL, when
needed, comes in the ``BENCH_NGINX_URL`` environment variable. The runner
(`bench/run.py`) starts this; running it by hand is fine for debugging or profiling.
``--params={"threads": 10}`` overrides some of the workload's size parameters
(`bench/instructions.py` runs each workload at two sizes).
"""

from __future__ import annotations

import json
import os
import sys

RESULT_PREFIX = "BENCH-RESULT "


def main(argv: list[str]) -> int:
    """Run one (runtime, workload) pair; returns the exit status."""
    args = [a for a in argv if not a.startswith("--")]
    quick = "--quick" in argv
    try:
        overrides = [json.loads(a.split("=", 1)[1]) for a in argv if a.startswith("--params=")]
    except json.JSONDecodeError as exc:
        print(f"worker: --params is not JSON ({exc}); e.g. --params='{{\"threads\": 10}}'",
              file=sys.stderr)
        return 2
    if not all(isinstance(o, dict) for o in overrides):
        print("worker: --params takes a JSON object, e.g. --params='{\"threads\": 10}'",
              file=sys.stderr)
        return 2
    if len(args) != 2:
        print("usage: worker.py RUNTIME WORKLOAD [--quick] [--params=JSON]", file=sys.stderr)
        return 2
    runtime_name, workload_name = args
    import runtimes  # imports nothing that patching cares about

    runtime = runtimes.get(runtime_name)
    spoilers = [m for m in ("threading", "socket", "queue", "selectors") if m in sys.modules]
    if spoilers:  # patching after these were imported would not be a fair test
        print(f"worker: {', '.join(spoilers)} imported before patching", file=sys.stderr)
        return 2
    original_sleep = runtime.setup()

    import workloads  # now threading, socket, queue... are imported, patched

    workload = workloads.get(workload_name)
    ctx = workloads.Context(runtime=runtime_name, original_sleep=original_sleep,
                            nginx_url=os.environ.get("BENCH_NGINX_URL"))
    params = workload.params(quick)
    for override in overrides:
        unknown = set(override) - set(params)
        if unknown:
            print(f"worker: {workload_name} has no parameter {', '.join(sorted(unknown))}; "
                  f"it has {', '.join(params)}", file=sys.stderr)
            return 2
        params.update(override)
    if runtime.kind == "async":
        if workload.run_async is None or runtime.run_coroutine is None:
            print(f"worker: {workload_name} has no coroutine version", file=sys.stderr)
            return 3
        figures = runtime.run_coroutine(workload.run_async(ctx, **params))
    else:
        figures = workload.run_threaded(ctx, **params)
    print(RESULT_PREFIX + json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
