"""The greensched benchmark suite: one runner for every workload and runtime.

    .venv/bin/python bench/run.py [--reps N] [--only W1,W2] [--runtimes R1,R2] [--quick]
                                  [--json FILE] [--markdown FILE]

Each (runtime, workload, repetition) runs in a fresh process (`bench/worker.py`);
repetitions are interleaved: repetition 1 of every workload on every runtime, then
repetition 2, ... (with the runtime order rotated each time), so slow drifts of the
machine hit every runtime alike. The report (markdown, on stdout) gives the median
of the repetitions and its ratio to gevent; progress goes to stderr. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import nginx  # noqa: E402  (after the sys.path set-up above)
import report  # noqa: E402
import runtimes  # noqa: E402
import sysinfo  # noqa: E402
import workloads  # noqa: E402
from worker import RESULT_PREFIX  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; errors name the known workloads and runtimes."""
    parser = argparse.ArgumentParser(
        description="Benchmark greensched against gevent, eventlet, OS threads, asyncio "
                    "and uvloop; prints a markdown table of medians and ratios to gevent.")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions per (runtime, workload), median reported "
                             "(default: 3, or 1 with --quick)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated workloads (default: all): "
                             f"{','.join(workloads.names())}")
    parser.add_argument("--runtimes", default="",
                        help=f"comma-separated runtimes (default: all): "
                             f"{','.join(runtimes.names())}")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 1 repetition: a smoke test of the whole suite")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before one run is killed and counted as an error "
                             "(default: 300)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every raw figure and the medians to this JSON file")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    try:
        args.workloads = [workloads.get(n) for n in _split(args.only)] or list(workloads.ALL)
        args.runtime_list = [runtimes.get(n) for n in _split(args.runtimes)] or list(runtimes.ALL)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def run_one(runtime: str, workload: str, quick: bool, env: dict[str, str],
            timeout: float) -> tuple[dict[str, float] | None, str | None, float]:
    """One child process: (figures, None, seconds) or (None, error, seconds)."""
    cmd = [sys.executable, str(BENCH_DIR / "worker.py"), runtime, workload]
    if quick:
        cmd.append("--quick")
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=str(REPO_DIR))
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g} s", time.monotonic() - start
    seconds = time.monotonic() - start
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):]), None, seconds
    tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
    return None, f"exit status {proc.returncode}: {tail[0][:300]}", seconds


def _progress(workload: workloads.Workload, figures: dict[str, float] | None,
              error: str | None) -> str:
    if figures is None:
        return f"ERROR {error}"
    return ", ".join(f"{m.label} {report.fmt_value(figures[m.key], m.unit)} {m.unit}"
                     for m in report.distinct_metrics(workload) if m.key in figures)


def postgres_url_variable() -> str:
    from workloads import postgres

    return postgres.URL_VARIABLE


def _start_postgres() -> tuple[Any | None, str]:
    """The PostgreSQL server of the pg_* workloads, started as the tests start theirs
    (tests/servers/real.py); (None, why) when it cannot be, and those workloads are skipped."""
    import shutil
    import tempfile

    sys.path.insert(0, str(REPO_DIR))
    from tests.servers.real import ServerMissing, start_postgres

    base = Path(tempfile.mkdtemp(prefix="greensched-bench-postgres-"))
    base.chmod(0o755)  # as root the server runs as its own user, which must reach its data
    try:
        server = start_postgres(base, max_connections=300)
    except (ServerMissing, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        return None, f"skipping the pg_* workloads: PostgreSQL could not be started: {exc}"
    stop = server.stop

    def stop_and_clean() -> None:
        stop()
        shutil.rmtree(base, ignore_errors=True)

    server.stop = stop_and_clean  # type: ignore[method-assign]
    return server, f"postgres serving {server.url} (pid {server.process.pid})"


def main(argv: list[str] | None = None) -> int:
    """Run the suite; returns 0, or 1 if any run failed."""
    args = parse_args(argv)
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = sysinfo.loadavg()
    nginx_binary = nginx.find_nginx()
    nginx_desc = None
    if nginx_binary is not None:
        nginx_desc = f"{nginx.nginx_version(nginx_binary)} ({nginx_binary})"
    # Taken now: the checkout may change while the suite runs (others edit greensched/).
    machine = sysinfo.machine_lines(str(REPO_DIR), nginx_desc)
    notes: list[str] = []

    chosen_runtimes = []
    for rt in args.runtime_list:
        why = rt.missing()
        if why:
            message = f"skipping runtime {rt.name}: {why}"
            log(message)
            notes.append(message)
        else:
            chosen_runtimes.append(rt)
    if not any(rt.name == runtimes.BASELINE for rt in chosen_runtimes):
        message = f"{runtimes.BASELINE} is not run: no ratios can be computed"
        log("warning: " + message)
        notes.append(message)

    chosen_workloads = []
    for wl in args.workloads:
        if wl.needs_nginx and nginx_binary is None:
            message = f"skipping workload {wl.name}: nginx not found; {nginx.INSTALL_HINT}"
            log(message)
            notes.append(message)
        else:
            chosen_workloads.append(wl)
    if not chosen_workloads or not chosen_runtimes:
        log("nothing to run")
        return 1

    env = dict(os.environ)
    server: nginx.Nginx | None = None
    if any(wl.needs_nginx for wl in chosen_workloads):
        from workloads import http_fanout

        assert nginx_binary is not None
        server = nginx.Nginx(nginx_binary, http_fanout.PATH, http_fanout.BODY, workers=1)
        try:
            env["BENCH_NGINX_URL"] = server.start()
        except (RuntimeError, OSError) as exc:
            server = None
            message = f"skipping the HTTP workloads: nginx failed to start: {exc}"
            log(message)
            notes.append(message.splitlines()[0])
            chosen_workloads = [wl for wl in chosen_workloads if not wl.needs_nginx]
        else:
            pid = server.process.pid if server.process else "?"
            log(f"nginx serving {server.url}{http_fanout.PATH} (pid {pid})")
    database: Any | None = None
    if any(wl.needs_postgres for wl in chosen_workloads):
        database, message = _start_postgres()
        if database is None:
            log(message)
            notes.append(message)
            chosen_workloads = [wl for wl in chosen_workloads if not wl.needs_postgres]
        else:
            env[postgres_url_variable()] = database.url
            log(message)
    if not chosen_workloads:
        log("nothing to run")
        return 1

    results: report.Results = {}
    raw: list[dict[str, Any]] = []
    failed = False
    try:
        for rep in range(args.reps):
            shift = rep % len(chosen_runtimes)
            order = chosen_runtimes[shift:] + chosen_runtimes[:shift]
            for wl in chosen_workloads:
                for rt in order:
                    cell = results.setdefault((wl.name, rt.name), report.Cell())
                    if rt.kind == "async" and wl.run_async is None:
                        cell.not_applicable = True
                        continue
                    figures, error, seconds = run_one(rt.name, wl.name, args.quick, env,
                                                      args.timeout)
                    if figures is not None:
                        cell.figures[rep + 1] = figures
                    else:
                        cell.errors.append(error or "unknown error")
                        failed = True
                    raw.append({"rep": rep + 1, "workload": wl.name, "runtime": rt.name,
                                "figures": figures, "error": error, "seconds": seconds})
                    log(f"[rep {rep + 1}/{args.reps}] {wl.name:15} {rt.name:10} "
                        f"{seconds:5.1f}s  {_progress(wl, figures, error)}")
    finally:
        if server is not None:
            server.stop()
        if database is not None:
            database.stop()

    elapsed = time.monotonic() - started
    runtime_names = [rt.name for rt in chosen_runtimes]
    command = "python bench/run.py" + "".join(f" {a}" for a in (argv if argv is not None
                                                                else sys.argv[1:]))
    lines = [
        "# greensched benchmarks",
        "",
        f"- Command: `{command}`" + (" (quick: small sizes, not for comparison)"
                                     if args.quick else ""),
        f"- Started {started_at}; took {elapsed / 60:.1f} min; {args.reps} repetition(s); "
        f"load average before: {load_before}, after: {sysinfo.loadavg()}",
        *machine,
    ]
    revision_after = sysinfo.git_revision(str(REPO_DIR))
    if revision_after not in machine[-1]:
        lines.append(f"- **The greensched checkout changed during the run**: now {revision_after}")
    extra_env = {k: v for k, v in os.environ.items() if k.startswith("GREENSCHED_")}
    if extra_env:
        lines.append(f"- Environment: {extra_env}")
    lines += ["", *report.legend(args.reps, chosen_workloads), "",
              *report.table(chosen_workloads, runtime_names, results), ""]
    lines += ["Workloads:", ""]
    for wl in chosen_workloads:
        lines.append(f"- `{wl.name}`: {wl.title}." + (f" {wl.note}" if wl.note else ""))
    noisy = report.noisy_cells(chosen_workloads, runtime_names, results)
    if noisy and args.reps > 1:
        lines += ["", "Cells whose repetitions spread by more than 10% of their median "
                      "((max − min) ÷ median):", "", "; ".join(noisy) + "."]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text)
    if args.json is not None:
        medians = {f"{w}/{r}": {m.key: cell.median(m.key) for m in workloads.get(w).metrics}
                   for (w, r), cell in results.items() if not cell.not_applicable}
        args.json.write_text(json.dumps({"command": command, "started": started_at,
                                         "seconds": elapsed, "reps": args.reps,
                                         "quick": args.quick, "runs": raw,
                                         "medians": medians}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
