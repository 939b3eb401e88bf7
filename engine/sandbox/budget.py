"""The budget of one evaluation (CPU time, elapsed time, memory growth), enforced by a tick.

The policy weaves ``_tick_()`` into every loop body, function body, lambda and comprehension clause, so a
script cannot run for long without calling it. The tick works in any thread (it needs no signal), and once
the budget is spent every later tick raises again: a ``finally: continue`` in the script can postpone the
error by one pass, never swallow it.

Per-operation size limits (:mod:`engine.sandbox.guards`) stop one operation from allocating too much; the
memory check here stops many allowed operations from adding up (``['x' * 10**6 for _ in range(10**5)]``).
It watches the resident size of the whole process, read from ``/proc/self/statm`` (Linux; elsewhere only
the per-operation limits apply), so memory that other threads allocate meanwhile counts too.

Time spent inside trusted helpers or inside one built-in call is not interrupted; the size limits keep
such calls short.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Final

from engine.sandbox.guards import Abort, OutOfMemory, OutOfTime

Tick = Callable[[], bool]

_MEMORY_INTERVAL: Final = 0.005
_STATM: Final = "/proc/self/statm"
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """The resident set size of this process, or None where the platform does not tell."""
    try:
        descriptor = os.open(_STATM, os.O_RDONLY)
    except OSError:
        return None
    try:
        fields = os.read(descriptor, 128).split()
    finally:
        os.close(descriptor)
    return int(fields[1]) * _PAGE_SIZE


def start_budget(cpu_seconds: float, wall_seconds: float, max_memory_bytes: int) -> Tick:
    """Start the clocks for one evaluation and return its tick.

    The thread's own CPU time is what is charged, so a script is not blamed for time the interpreter gave
    to other threads; ``wall_seconds`` caps the elapsed time for the case where the thread barely runs.
    Reading the CPU clock and the memory size costs system calls, so both start at the first tick (an
    expression without loops or calls never pays for them; the straight-line code before the first tick
    is short by construction). After that the tick reads only the cheap monotonic clock on most passes:
    the CPU clock when the CPU budget could have been reached, since CPU time never outruns elapsed time,
    and the memory size every few milliseconds.
    """
    perf_counter = time.perf_counter
    thread_time = time.thread_time
    wall_start = perf_counter()
    wall_deadline = wall_start + wall_seconds
    cpu_start: float | None = None
    cpu_due = wall_start + cpu_seconds
    next_check = -math.inf
    memory_start: int | None = None
    memory_known = True
    failure: Abort | None = None

    def tick() -> bool:
        nonlocal next_check, cpu_start, cpu_due, memory_start, memory_known, failure
        now = perf_counter()
        if now < next_check:
            return True
        if failure is not None:
            raise type(failure)(*failure.args)
        if cpu_start is None:
            cpu_start = thread_time()
        if memory_known:
            resident = resident_bytes()
            if resident is None:
                memory_known = False
            elif memory_start is None:
                memory_start = resident
            elif resident - memory_start > max_memory_bytes:
                failure = OutOfMemory(
                    f"the script grew the process by {(resident - memory_start) // 2**20:,} MiB "
                    f"(limit {max_memory_bytes // 2**20:,} MiB)"
                )
        if failure is None and now >= cpu_due:
            used = thread_time() - cpu_start
            if used >= cpu_seconds:
                failure = OutOfTime(f"the script used more than {cpu_seconds:g} s of CPU time")
            cpu_due = now + (cpu_seconds - used)
        if failure is None and now >= wall_deadline:
            failure = OutOfTime(f"the script ran for more than {wall_seconds:g} s")
        if failure is not None:
            next_check = -math.inf
            raise type(failure)(*failure.args)
        next_check = min(cpu_due, wall_deadline, now + _MEMORY_INTERVAL if memory_known else math.inf)
        return True

    return tick
