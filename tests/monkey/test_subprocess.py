"""Patched subprocess and os.waitpid: waiting for children, and their pipes, parks green threads.

Every test runs a snippet in a fresh interpreter against real child processes
(``cat``, ``sleep``, the running Python). Order is pinned by what the children
print and by waiting until a green thread is parked, not by sleeping; the only
clocks are generous bounds. Snippets that a plain interpreter can run too are run
both ways and must print the same thing (`same_as_stdlib`).
"""

from __future__ import annotations

import os
import textwrap
import warnings

import pytest

import greensched
from greensched import fileobject
from tests.util import run_python

PATCH = "import greensched\ngreensched.patch_all()\n"


def check(code: str, timeout: float = 120) -> list[str]:
    proc = run_python(PATCH + textwrap.dedent(code), timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def same_as_stdlib(code: str, timeout: float = 30) -> list[str]:
    """Run ``code`` plain and patched; both must succeed and print the same lines."""
    code = textwrap.dedent(code)
    plain = run_python(code, timeout=timeout)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    green = run_python(PATCH + code, timeout=timeout)
    assert green.returncode == 0, green.stdout + green.stderr
    assert green.stdout.splitlines() == plain.stdout.splitlines()
    return green.stdout.splitlines()


def test_twenty_children_from_twenty_green_threads_overlap() -> None:
    """subprocess.run of 20 `sleep 0.2` children takes well under 20 x 0.2 s."""
    out = check(
        """
import subprocess, time
start = time.monotonic()
threads = [greensched.spawn(subprocess.run, ["sleep", "0.2"]) for _ in range(20)]
codes = {t.result().returncode for t in threads}
print(codes, time.monotonic() - start < 2.0)
"""
    )
    assert out == ["{0} True"]


def test_communicate_and_wait_timeouts_match_the_stdlib() -> None:
    out = check(
        """
import subprocess, sys, time
r = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                   input="hello", capture_output=True, text=True)
print(r.returncode, r.stdout.strip())
p = subprocess.Popen(["sleep", "5"])
try:
    p.wait(timeout=0.1)
except subprocess.TimeoutExpired:
    print("wait timed out")
try:
    subprocess.run(["sleep", "5"], timeout=0.1)
except subprocess.TimeoutExpired:
    print("run timed out")
p.kill()
print(p.wait())
"""
    )
    assert out == ["0 HELLO", "wait timed out", "run timed out", "-9"]


def test_a_ticker_keeps_running_while_main_waits_for_a_child() -> None:
    out = check(
        """
import subprocess, time
ticks = []
stop = greensched.Event()
def ticker():
    while not stop.is_set():
        time.sleep(0.01)
        ticks.append(1)
t = greensched.spawn(ticker)
subprocess.run(["sleep", "0.3"])
stop.set(); t.join()
print(len(ticks) >= 15)
"""
    )
    assert out == ["True"]


def test_waitpid_errors_and_any_child() -> None:
    out = check(
        """
import os
try:
    os.waitpid(999999, 0)
except ChildProcessError as exc:
    print("ECHILD", exc.errno == 10)
pid = os.fork()
if pid == 0:
    os._exit(7)
got, status = os.waitpid(-1, 0)
print(got == pid, os.waitstatus_to_exitcode(status))
"""
    )
    assert out == ["ECHILD True", "True 7"]


# -- green pipes ---------------------------------------------------------------------------

#: Snippet helper: park the caller until green thread ``t`` is parked (it reached its wait).
WAIT_PARKED = """
def wait_parked(t):
    while t.state != "PARKED" and not t.done():
        greensched.sleep(0)
"""


def test_popen_is_patched_and_the_original_stays_reachable() -> None:
    out = check(
        """
        import subprocess, sys, io
        from greensched.monkey import original, is_patched
        import greensched.subprocess as gsub
        stdlib = original("subprocess", "Popen")
        print(subprocess.Popen is gsub.Popen, stdlib is gsub._StdlibPopen, is_patched("subprocess", "Popen"))
        print(issubclass(subprocess.Popen, stdlib), stdlib.__module__)
        with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as p:
            print(repr(p).startswith("<Popen: returncode: None"), isinstance(p.stdout, io.BufferedReader))
            print(os.get_blocking(p.stdout.fileno()), os.get_blocking(p.stdin.fileno()))
            p.stdin.close()
        """.replace("import subprocess, sys, io", "import subprocess, sys, io, os")
    )
    assert out == ["True True True", "True subprocess", "True True", "False False"]


def test_a_ticker_keeps_ticking_while_main_reads_a_childs_lines() -> None:
    """Between two lines (0.2 s apart) the ticker runs: readline parks, not the OS thread."""
    out = check(
        """
        import subprocess, sys, time
        CHILD = "import time\\nfor i in range(3):\\n    print(i, flush=True)\\n    time.sleep(0.2)"
        ticks = 0
        stop = greensched.Event()
        def ticker():
            global ticks
            while not stop.is_set():
                time.sleep(0.01)
                ticks += 1
        t = greensched.spawn(ticker)
        with subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True) as p:
            marks = [(p.stdout.readline(), ticks) for _ in range(3)]
            rest = p.stdout.read()
        stop.set(); t.join()
        print([line for line, _ in marks], repr(rest))
        print([b - a > 2 for (_, a), (_, b) in zip(marks, marks[1:])])
        """,
        timeout=30,
    )
    assert out == ["['0\\n', '1\\n', '2\\n'] ''", "[True, True]"]


def test_twenty_green_threads_each_read_their_own_childs_lines_at_once() -> None:
    """All twenty readers are parked in readline at the same moment; each gets its own lines."""
    out = check(
        """
        import subprocess
        procs = {}
        def reader(i):
            with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as p:
                procs[i] = p
                lines = [p.stdout.readline(), p.stdout.readline()]
                p.stdin.close()
                return lines + [p.stdout.read()]
        threads = [greensched.spawn(reader, i) for i in range(20)]
        while greensched.stats()["fds_waited_on"] < 20:
            greensched.sleep(0.001)
        print(all(t.state == "PARKED" for t in threads))
        for i in reversed(range(20)):
            procs[i].stdin.write(f"{i} a\\n{i} b\\n")
            procs[i].stdin.flush()
        print(all(t.result(timeout=10) == [f"{i} a\\n", f"{i} b\\n", ""] for i, t in enumerate(threads)))
        print({p.returncode for p in procs.values()})
        """,
        timeout=60,
    )
    assert out == ["True", "True", "{0}"]


def test_a_mebibyte_through_cat_while_another_green_thread_reads() -> None:
    """Writer and reader share one OS thread; either one blocking it would deadlock."""
    out = check(
        """
        import os, subprocess
        data = os.urandom(1 << 20)
        for kwargs in ({}, {"bufsize": 0}, {"bufsize": 1 << 16}):
            with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kwargs) as p:
                def feed():
                    written = p.stdin.write(data)
                    p.stdin.close()
                    return written
                feeder = greensched.spawn(feed)
                out = p.stdout.read()
                print(kwargs, feeder.result(timeout=10), out == data)
        """,
        timeout=30,
    )
    assert out == ["{} 1048576 True", "{'bufsize': 0} 1048576 True", "{'bufsize': 65536} 1048576 True"]


def test_text_mode_encoding_errors_and_universal_newlines_match_the_stdlib() -> None:
    out = same_as_stdlib(
        r"""
        import subprocess, sys
        CHILD = ("import sys; out = sys.stdout.buffer; "
                 "out.write(b'caf\\xc3\\xa9\\r\\nsecond\\rthird\\nbad \\xff\\n'); out.flush(); "
                 "out.write(sys.stdin.buffer.read())")
        with subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, encoding="utf-8", errors="replace") as p:
            print([p.stdout.readline() for _ in range(4)])
            print(p.stdout.encoding, p.stdout.errors, p.stdin.write_through, p.stdin.line_buffering)
            p.stdin.write("é\n")
            p.stdin.close()
            print(repr(p.stdout.read()))
        with subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, universal_newlines=True, encoding="latin-1") as p:
            print(p.communicate("é\n"))
        # bufsize=1: a text line reaches cat without flush()
        with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, bufsize=1) as p:
            p.stdin.write("no flush needed\n")
            print(repr(p.stdout.readline()), p.stdin.line_buffering)
            p.stdin.close()
        print(subprocess.run([sys.executable, "-c", "print('a\\r\\nb')"], capture_output=True,
                             text=True).stdout.splitlines())
        print(repr(subprocess.check_output(["cat"], input="x\r\ny", text=True)))
        """
    )
    assert out[0] == "['café\\n', 'second\\n', 'third\\n', 'bad \ufffd\\n']"
    assert out[2] == "'é\\n'"
    assert out[4] == "'no flush needed\\n' True"


def test_bufsize_zero_gives_raw_pipes_that_match_the_stdlib() -> None:
    out = same_as_stdlib(
        """
        import io, subprocess, threading
        with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0) as p:
            print(isinstance(p.stdin, io.RawIOBase), isinstance(p.stdout, io.RawIOBase))
            p.stdin.write(b"abc")
            print(p.stdout.read(100))            # what is there, not 100 bytes
            got = []
            reader = threading.Thread(target=lambda: got.append(p.stdout.read()))
            reader.start()
            print(p.stdin.write(b"x" * 300000))  # all of it, though a pipe holds 64 KiB
            p.stdin.close()
            reader.join()
            print(len(got[0]), p.stdout.read(), p.stdin.closed)
        """
    )
    assert out == ["True True", "b'abc'", "300000", "300000 b'' True"]


@pytest.mark.parametrize("kwargs", ["{}", "{'text': True}", "{'bufsize': 0}", "{'text': True, 'bufsize': 1}"])
def test_closing_a_pipe_wakes_the_green_thread_parked_on_it(kwargs: str) -> None:
    """close() from one green thread: a reader (or writer) parked in that file gets an error at once."""
    out = check(
        WAIT_PARKED
        + f"""
import subprocess, time
kwargs = {kwargs}
def attempt(call):
    try:
        return repr(call())
    except (OSError, ValueError) as exc:
        return type(exc).__name__
# `sleep` neither reads its stdin nor writes its stdout: both calls must park.
with subprocess.Popen(["sleep", "30"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kwargs) as p:
    reader = greensched.spawn(attempt, p.stdout.readline)
    wait_parked(reader)
    start = time.monotonic()
    p.stdout.close()
    print("reader:", reader.result(timeout=5), p.stdout.closed, time.monotonic() - start < 2)
    big = "x" * (4 << 20) if kwargs.get("text") else b"x" * (4 << 20)
    writer = greensched.spawn(attempt, lambda: p.stdin.write(big))  # more than a pipe holds
    wait_parked(writer)
    p.stdin.close()
    print("writer:", writer.result(timeout=5), p.stdin.closed)
    p.kill()
""",
        timeout=30,
    )
    assert out == ["reader: OSError True True", "writer: OSError True"]


def test_communicate_with_input_and_timeout_matches_the_stdlib() -> None:
    """TimeoutExpired while the child holds on, then a retry that gets everything."""
    out = same_as_stdlib(
        """
        import os, subprocess, sys
        for text in (False, True):
            hold_r, hold_w = os.pipe()       # the child waits for EOF on hold_r
            CHILD = ("import os, sys; data = sys.stdin.buffer.read(); "
                     f"print(len(data), flush=True); os.read({hold_r}, 1); print('released')")
            p = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 pass_fds=[hold_r], text=text)
            os.close(hold_r)
            data = ("y" if text else b"y") * (1 << 20)
            try:
                p.communicate(data, timeout=0.2)
            except subprocess.TimeoutExpired as exc:
                print("timed out after", exc.timeout)
            os.close(hold_w)
            print(p.communicate(timeout=30), p.returncode)
        """
    )
    assert out == [
        "timed out after 0.2", "(b'1048576\\nreleased\\n', b'') 0",
        "timed out after 0.2", "('1048576\\nreleased\\n', '') 0",
    ]


def test_a_green_pipe_given_to_another_child_reaches_it_blocking() -> None:
    """The shell-pipeline recipe: the second child reads a blocking stdin, not EAGAIN."""
    out = same_as_stdlib(
        """
        import subprocess, sys
        p1 = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2); print('late')"],
                              stdout=subprocess.PIPE)
        CHILD = "import os, sys; print(os.get_blocking(0), sys.stdin.read().upper())"
        p2 = subprocess.Popen([sys.executable, "-c", CHILD], stdin=p1.stdout, stdout=subprocess.PIPE)
        p1.stdout.close()
        print(p2.communicate()[0], p1.wait(), p2.returncode)
        p3 = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        CHILD = "import os, sys; print(os.get_blocking(1), flush=True)"
        print(subprocess.run([sys.executable, "-c", CHILD], stdout=p3.stdin,
                             stderr=subprocess.STDOUT).returncode)
        p3.stdin.close()
        print(p3.stdout.read(), p3.wait())
        """
    )
    assert out == ["b'True LATE\\n\\n' 0 0", "0", "b'True\\n' 0"]


def test_a_green_pipe_stays_green_after_lending_itself_to_a_child() -> None:
    """The parent's end keeps O_NONBLOCK, and the child's blocking twin is not leaked."""
    out = check(
        """
        import os, subprocess
        def fds_on(pipe):  # the fds of this process open on the same pipe as ``pipe``
            ino = os.fstat(pipe.fileno()).st_ino
            found = []
            for fd in map(int, os.listdir("/proc/self/fd")):
                try:
                    if os.fstat(fd).st_ino == ino:
                        found.append(fd)
                except OSError:
                    pass  # the directory's own fd, closed by now
            return found
        p1 = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        p2 = subprocess.Popen(["true"], stdin=p1.stdout, stdout=p1.stdin)
        print(p2.wait(), os.get_blocking(p1.stdout.fileno()), os.get_blocking(p1.stdin.fileno()))
        print(fds_on(p1.stdout) == [p1.stdout.fileno()], fds_on(p1.stdin) == [p1.stdin.fileno()])
        p1.stdin.write(b"still green\\n")
        p1.stdin.close()
        print(p1.stdout.read(), p1.wait())
        p1.stdout.close()
        """
    )
    assert out == ["0 False False", "True True", "b'still green\\n' 0"]


# -- greensched.fileobject, used directly ----------------------------------------------------

def test_open_pipe_between_two_green_threads() -> None:
    r, w = os.pipe()
    reader = fileobject.open_pipe(r, "r", encoding="utf-8")
    writer = fileobject.open_pipe(w, "w", encoding="utf-8", buffering=1)
    assert isinstance(reader, fileobject.TextPipeWrapper) and writer.line_buffering
    got: list[str] = []
    consumer = greensched.spawn(lambda: got.extend(reader))
    for i in range(3):
        writer.write(f"line {i}\n")
        greensched.sleep(0)
    writer.close()
    consumer.join(timeout=5)
    reader.close()
    assert got == ["line 0\n", "line 1\n", "line 2\n"]
    assert reader.closed and writer.closed


def test_pipeio_checks_and_errors_say_what_is_wrong() -> None:
    r, w = os.pipe()
    raw = fileobject.PipeIO(r, "rb", closefd=False)
    assert not os.get_blocking(r) and fileobject.is_green_pipe(r)
    with pytest.raises(ValueError, match="'rb' \\(read end\\) or 'wb'"):
        fileobject.PipeIO(w, "rw")
    with pytest.raises(TypeError, match="needs a file descriptor"):
        fileobject.PipeIO("3")  # type: ignore[arg-type]
    import io
    with pytest.raises(io.UnsupportedOperation, match="not open for writing"):
        raw.write(b"x")
    os.write(w, b"hello")
    assert raw.read(100) == b"hello" and raw.name == r and not raw.isatty()
    raw.close()
    assert os.get_blocking(r) and not fileobject.is_green_pipe(r)  # closefd=False: given back
    with pytest.raises(ValueError, match="closed file"):
        raw.fileno()
    with pytest.raises(ValueError, match="unbuffered text"):
        fileobject.open_pipe(w, "w", buffering=0)
    os.close(r)
    os.close(w)


def test_an_unclosed_pipe_warns_like_an_unclosed_file() -> None:
    r, w = os.pipe()
    os.close(w)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = fileobject.open_pipe(r, "rb")
        del f
        import gc
        gc.collect()
    assert any(issubclass(x.category, ResourceWarning) and "unclosed file" in str(x.message) for x in caught)
