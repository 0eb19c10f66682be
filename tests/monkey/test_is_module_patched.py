"""greensched.monkey.is_module_patched: what libraries ask to pick a cooperative strategy.

It answers as ``gevent.monkey.is_module_patched`` does (psycopg, grpc, Celery and
kombu ask gevent's), for the stdlib modules and for the drivers greensched made
green, and never imports anything. Each case runs in a fresh interpreter.
"""

from __future__ import annotations

from tests.util import run_python


def test_is_module_patched_before_and_after_patch_all() -> None:
    proc = run_python(
        """
        import sys
        from greensched.monkey import is_module_patched
        names = ["socket", "select", "selectors", "threading", "thread", "_thread", "time",
                 "ssl", "subprocess", "queue", "signal", "os"]
        assert not any(is_module_patched(n) for n in names)
        import greensched
        greensched.patch_all()
        missing = [n for n in names if not is_module_patched(n)]
        assert not missing, missing
        assert not is_module_patched("json") and not is_module_patched("psycopg2")
        assert "psycopg2" not in sys.modules and "psycopg" not in sys.modules  # asking imports nothing
        import psycopg2, psycopg
        assert is_module_patched("psycopg2") and is_module_patched("psycopg")
        assert is_module_patched("psycopg.waiting") and is_module_patched("psycopg.connection")
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_parts_turned_off_are_not_patched() -> None:
    proc = run_python(
        """
        import greensched
        from greensched.monkey import is_module_patched
        greensched.patch_all(select=False, drivers=False)
        import psycopg2
        assert not is_module_patched("select") and not is_module_patched("psycopg2")
        assert is_module_patched("socket")
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
