"""The self-contained runtime. Nothing here imports from greensched outside `_core`.

Modules, in dependency order: `_errors`, `_timers` (deadline heap), `_netpoll`
(selectors + wake-up pipe), `_waitqueue` (FIFO of parked threads), `_greenthread`
(GreenThread), `_settings` (the preemption settings and their floor), `_pending`
(a C-level signal re-trip), `_safepoints` and `_preempt` (the only user of `signal`, also for
the opt-in dump signal), `_introspect` (stacks, the deadlock report, counters; it
only reads), `_fdwait` (the hub's fd waits, a mixin of `Hub`), `_hub` (run queue
and THE loop). Only `_greenthread` and `_hub` import
greenlet.
"""
