"""The script sandbox: escapes are refused, budgets hold in worker threads, ordinary process code works."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from engine.errors import ScriptError, ScriptMemoryError, ScriptSecurityError, ScriptTimeoutError
from engine.sandbox import Sandbox, SandboxScriptEngine, script_error_in
from engine.sandbox import core as sandbox_core

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _helpers() -> dict[str, Callable[..., Any]]:
    return {
        "now": lambda: NOW,
        "days_after": lambda start, days: start + timedelta(days=days),
        "parse_datetime": datetime.fromisoformat,
        "setting": {"threshold": 5, "unit": "ARV"}.__getitem__,
    }


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(_helpers())


@pytest.fixture(scope="module")
def quick() -> Sandbox:
    """A sandbox with a short CPU budget, for the tests that spin until it runs out."""
    return Sandbox(_helpers(), cpu_seconds=0.2)


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _run(sandbox: Sandbox, source: str) -> Any:
    """Execute a script (several lines or an assignment), or else evaluate an expression."""
    if "\n" in source or " = " in source:
        context: dict[str, Any] = {}
        sandbox.execute(source, context)
        return context
    return sandbox.evaluate(source, {})


# Escapes refused when the script is compiled: nothing runs, and check() reports the line.
COMPILE_TIME_ESCAPES = {
    "class hierarchy walk": "().__class__.__bases__[0].__subclasses__()",
    "mro walk": "[].__class__.__mro__[-1].__subclasses__()",
    "__import__": "__import__('os').system('id')",
    "import statement": "import os",
    "from import": "from os import path",
    "builtins by name": "__builtins__['open']",
    "format attribute walk": "'{0.__class__}'.format(1)",
    "format_map attribute walk": "'{a.__class__.__base__}'.format_map({'a': 1})",
    "format through str": "str.format('{0.__globals__}', now)",
    "f-string attribute walk": "f'{now.__globals__}'",
    "generator frame walk": "(x for x in [1]).gi_frame.f_back.f_globals",
    "generator code": "(x for x in [1]).gi_code",
    "traceback frame": _lines(
        "try:", "    1 / 0", "except ZeroDivisionError as error:", "    f = error.__traceback__.tb_frame"
    ),
    "function globals": "(lambda: 0).__globals__",
    "helper globals": "now.__globals__['__builtins__']",
    "bound method self": "[].append.__self__",
    "builtin self": "len.__self__",
    "default argument": "def f(x=().__class__):\n    return x\n",
    "lambda default argument": "(lambda c=().__class__: c)()",
    "lambda capturing dunder": "(lambda: [].__class__)()",
    "decorator": "def deco(f):\n    return f\n@deco\ndef g():\n    return 1\n",
    "class statement": "class Evil:\n    pass\n",
    "underscore variable": "_getattr_ = len",
    "global dunder": "def f():\n    global __builtins__\n    return 1\n",
    "exec call": "exec('import os')",
    "eval call": "eval('1')",
    "print": "print('x')",
    "with statement": "with x:\n    pass\n",
    "generator function": "def g():\n    yield 1\n",
    "bare except": "try:\n    x = 1\nexcept:\n    pass\n",
    "except BaseException": "try:\n    x = 1\nexcept BaseException:\n    pass\n",
    "dict dunder method": "{}.__setitem__('a', 1)",
    "dunder on exception class": "ValueError.__subclasses__()",
}

# Escapes that compile but are refused when they run.
RUNTIME_ESCAPES = {
    "getattr with built name": "getattr((), '_' + '_class__')",
    "getattr plain": "getattr(1, 'real')",
    "setattr": "setattr(math, 'pi', 3)",
    "delattr": "delattr(math, 'pi')",
    "type": "type(1)",
    "type with three arguments": "type('Evil', (), {})",
    "open": "open('/etc/passwd').read()",
    "compile": "compile('1', 'x', 'eval')",
    "eval through a name": "e = eval\nx = e('1')\n",
    "globals": "globals()['__builtins__']",
    "vars": "vars()",
    "locals": "locals()",
    "dir": "dir(1)",
    "object": "object()",
    "iter with sentinel": "iter(int, 1)",
    "dunder key on a dict": "{'__class__': 1}['__class__']",
    "dunder key on task data": "data['__builtins__']",
    "mro method on a type": "int.mro()",
    "exception class mro": "ValueError.mro()",
    "class attribute of a type": "dict.fromkeys(['a'])",
    "exception with_traceback": _lines(
        "try:", "    1 / 0", "except ZeroDivisionError as error:", "    t = error.with_traceback(None)"
    ),
    "generator send": "(x for x in [1]).send(None)",
    "method outside the allow-list": "'abc'.encode()",
    "attribute of a time zone": "now().tzinfo.utcoffset(None)",
    "write to a namespace": "math.pi = 3",
    "write to a tuple": "t = (1, 2)\nt[0] = 3\n",
    "star width in percent-format": "'%*d' % (5, 1)",
    "except naming a non-exception": "try:\n    1 / 0\nexcept len:\n    pass\n",
}


@pytest.mark.parametrize("source", COMPILE_TIME_ESCAPES.values(), ids=COMPILE_TIME_ESCAPES.keys())
def test_compile_time_escape_is_refused_before_running(sandbox: Sandbox, source: str) -> None:
    problems = sandbox.check(source, mode="exec")
    context: dict[str, Any] = {"x": 1}

    with pytest.raises(ScriptSecurityError) as refused:
        sandbox.execute(source, context)

    assert problems
    assert problems[0].startswith("line ")
    assert refused.value.line is not None
    assert context == {"x": 1}


@pytest.mark.parametrize("source", RUNTIME_ESCAPES.values(), ids=RUNTIME_ESCAPES.keys())
def test_runtime_escape_is_refused(sandbox: Sandbox, source: str) -> None:
    context: dict[str, Any] = {"data": {"__builtins__": "not here"}}

    with pytest.raises(ScriptSecurityError) as refused:
        sandbox.execute(source, context)

    assert refused.value.line is not None
    assert refused.value.code == "script-forbidden"


def test_refusal_cannot_be_caught_by_the_script(sandbox: Sandbox) -> None:
    script = "try:\n    t = type(1)\nexcept Exception:\n    t = 'caught'\n"
    context: dict[str, Any] = {}

    with pytest.raises(ScriptSecurityError, match=r"type\(\) is not available"):
        sandbox.execute(script, context)

    assert context == {}


def test_task_data_cannot_replace_the_guards(sandbox: Sandbox) -> None:
    context = {"_getattr_": getattr, "__builtins__": __builtins__, "kind": int}

    with pytest.raises(ScriptSecurityError, match=r"'int\.mro' is not available"):
        sandbox.evaluate("kind.mro()", context)


def test_check_lists_every_violation_with_its_line(sandbox: Sandbox) -> None:
    problems = sandbox.check("x = 1\nimport os\ny = ().__class__\n", mode="exec")

    assert problems == [
        "line 2: import statements are not allowed; use the functions the engine provides",
        'line 3: "__class__" is an invalid attribute name because it starts with "_"',
    ]


def test_check_reports_syntax_errors_with_line(sandbox: Sandbox) -> None:
    assert sandbox.check("x = 1\nif x\n    y = 2\n", mode="exec") == ["line 2: SyntaxError: expected ':'"]
    assert sandbox.check("amount > 5", mode="eval") == []


# The CPU budget


def test_endless_loop_in_worker_thread_is_stopped_within_two_seconds() -> None:
    sandbox = Sandbox()
    outcome: dict[str, Any] = {}

    def worker() -> None:
        started = time.perf_counter()
        try:
            sandbox.execute("while True:\n    pass\n", {})
        except ScriptTimeoutError as error:
            outcome["error"] = error
        outcome["elapsed"] = time.perf_counter() - started

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert isinstance(outcome["error"], ScriptTimeoutError)
    assert outcome["error"].line == 1
    assert outcome["elapsed"] < 2.5


SPINNERS = {
    "caught by except Exception": "try:\n    while True:\n        pass\nexcept Exception:\n    pass\n",
    "handler naming an unknown class": "try:\n    while True:\n        pass\nexcept Undefined:\n    pass\n",
    "finally continue": _lines(
        "while True:",
        "    try:",
        "        while True:",
        "            pass",
        "    finally:",
        "        continue",
    ),
    "finally return": _lines(
        "def f():",
        "    try:",
        "        while True:",
        "            pass",
        "    finally:",
        "        return 1",
        "while f():",
        "    pass",
    ),
    "exponential recursion through finally": _lines(
        "def f():", "    try:", "        f()", "    finally:", "        f()", "f()"
    ),
    "nested generator": "total = sum(1 for x in range(10**6) for y in range(10**6))",
    "lambda recursion in sorted": _lines(
        "f = lambda n: n if n < 1 else f(n - 1) + f(n - 1)", "x = sorted([30], key=f)"
    ),
    "loop in an expression": "[x for x in range(10**6) if all(y for y in range(10**6))]",
}


@pytest.mark.parametrize("script", SPINNERS.values(), ids=SPINNERS.keys())
def test_budget_cannot_be_swallowed_or_escaped(quick: Sandbox, script: str) -> None:
    started = time.perf_counter()

    # On a busy machine the elapsed-time cap (twice the CPU budget) can be reached first.
    with pytest.raises(
        ScriptTimeoutError, match=r"used more than 0\.2 s of CPU time|ran for more than 0\.4 s"
    ):
        quick.execute(script, {})

    assert time.perf_counter() - started < 2.0


def test_budget_is_per_evaluation(quick: Sandbox) -> None:
    with pytest.raises(ScriptTimeoutError):
        quick.execute("while True:\n    pass\n", {})

    assert quick.evaluate("sum(range(100))", {}) == 4950


# The allocation guard

MEMORY_BOMBS = {
    "string repetition": "'a' * 10**10",
    "list repetition": "[0] * 10**9",
    "reversed repetition": "10**9 * [0]",
    "tower of powers": "10 ** 10 ** 8",
    "big shift": "1 << 10**10",
    "squaring loop": "x = 3\nwhile True:\n    x = x * x\n",
    "doubling by concatenation": "s = 'ab'\nwhile True:\n    s = s + s\n",
    "doubling in place": "s = [1]\nwhile True:\n    s += s\n",
    "doubling by extend": "s = [1]\nwhile True:\n    s.extend(s)\n",
    "doubling by unpacking": "s = [1]\nwhile True:\n    s = [*s, *s]\n",
    "doubling by slice assignment": "s = [1]\nwhile True:\n    s[len(s):] = s\n",
    "doubling by f-string": "s = 'ab'\nwhile True:\n    s = f'{s}{s}'\n",
    "doubling an item": "d = {'s': 'ab'}\nwhile True:\n    d['s'] += d['s']\n",
    "big range list": "list(range(10**9))",
    "padding": "'x'.ljust(10**10)",
    "percent width": "'%0100000000d' % 1",
    "f-string width": "f'{1:>{10**9}}'",
    "float precision": "f'{1.5:.900000000f}'",
    "join of repeats": "'-'.join(['abc'] * 10**6)",
    "replace empty": "s = 'ab' * 1000\nt = s.replace('', s)\n",
    "str of shared nesting": "a = [0] * 1000\nb = [a] * 1000\nc = [b] * 1000\nt = str(c)\n",
    "call with huge star args": "f = lambda *a: a\nx = f(*range(10**6), *range(10**6))\n",
}


@pytest.mark.parametrize("source", MEMORY_BOMBS.values(), ids=MEMORY_BOMBS.keys())
def test_memory_bomb_is_refused_and_the_process_lives(sandbox: Sandbox, source: str) -> None:
    with pytest.raises(ScriptMemoryError) as refused:
        _run(sandbox, source)

    assert refused.value.code == "script-memory"
    assert sandbox.evaluate("1 + 1", {}) == 2


def test_sum_only_adds_numbers(sandbox: Sandbox) -> None:
    with pytest.raises(ScriptError, match=r"TypeError: sum\(\) adds numbers or timedeltas"):
        sandbox.evaluate("sum([[0] * 1000] * 1000, [])", {})

    assert sandbox.evaluate("sum([timedelta(hours=1)] * 3, timedelta())", {}) == timedelta(hours=3)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="memory growth is read from /proc")
def test_many_allowed_allocations_adding_up_are_stopped() -> None:
    # Values of 40 MB each are allowed one at a time. They are above the allocator's largest mmap
    # threshold, so each one grows the process at once, whatever earlier tests left free on the heap.
    sandbox = Sandbox(cpu_seconds=30, max_sequence=50_000_000, max_memory_bytes=64 * 2**20)

    with pytest.raises(ScriptMemoryError, match=r"grew the process by \d+ MiB \(limit 64 MiB\)"):
        sandbox.execute("rows = ['a' * 40_000_000 for _ in range(1000)]\n", {})

    assert sandbox.evaluate("len('a' * 40_000_000)", {}) == 40_000_000


def test_values_up_to_the_limit_are_allowed(sandbox: Sandbox) -> None:
    assert sandbox.evaluate("len('ab' * 500_000)", {}) == 1_000_000
    assert sandbox.evaluate("len(list(range(10**6)))", {}) == 1_000_000
    assert sandbox.evaluate("(2 ** 64) * (2 ** 64)", {}) == 2**128


def test_limits_are_configurable() -> None:
    small = Sandbox(max_sequence=100, max_int_bits=64)

    with pytest.raises(ScriptMemoryError, match="limit 100"):
        small.evaluate("'a' * 101", {})
    with pytest.raises(ScriptMemoryError, match="limit 64"):
        small.evaluate("2 ** 65", {})
    assert small.evaluate("'a' * 100", {}) == "a" * 100


# Ordinary process code


def test_gateway_condition_reads_task_data(sandbox: Sandbox) -> None:
    context = {"risk": {"level": "high", "score": 7}, "firearms": True, "officers": ["A", "B"]}

    assert sandbox.evaluate("risk['level'] == 'high' and firearms and len(officers) >= 2", context) is True
    assert sandbox.evaluate("\n    risk['score'] > setting('threshold')\n  ", context) is True
    assert sandbox.evaluate("risk.get('missing', 'none')", context) == "none"


def test_script_builds_data_with_comprehensions_and_fstrings(sandbox: Sandbox) -> None:
    script = """
factors = [f for f in assessment['factors'] if f['weight'] > 0]
score = sum(f['weight'] for f in factors)
by_name = {f['name']: f['weight'] for f in factors}
names = sorted(by_name, key=lambda n: -by_name[n])
level = 'high' if score >= 10 else 'medium' if score >= 5 else 'low'
summary = f"{len(factors)} factors, score {score:>3}, level {level!r}: {', '.join(names)}"
counts = {}
for f in factors:
    counts[f['kind']] = counts.get(f['kind'], 0) + 1
counts['weapons'] += 10
first, *rest = names
"""
    context: dict[str, Any] = {
        "assessment": {
            "factors": [
                {"name": "history", "weight": 4, "kind": "intel"},
                {"name": "weapons", "weight": 6, "kind": "weapons"},
                {"name": "noise", "weight": 0, "kind": "intel"},
            ]
        }
    }

    sandbox.execute(script, context)

    assert context["score"] == 10
    assert context["level"] == "high"
    assert context["summary"] == "2 factors, score  10, level 'high': weapons, history"
    assert context["counts"] == {"intel": 1, "weapons": 11}
    assert (context["first"], context["rest"]) == ("weapons", ["history"])


def test_helpers_and_datetime_arithmetic(sandbox: Sandbox) -> None:
    script = """
granted = parse_datetime(granted_at)
expires = days_after(granted, 90)
remaining = expires - now()
review_due = (granted + timedelta(days=28)).isoformat()
expired = expires < now()
days_left = remaining.days
weekday = expires.strftime('%A')
"""
    context: dict[str, Any] = {"granted_at": "2025-12-01T10:00:00+00:00"}

    sandbox.execute(script, context)

    assert context["expires"] == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert context["review_due"] == "2025-12-29T10:00:00+00:00"
    assert context["expired"] is False
    assert context["days_left"] == 55
    assert context["weekday"] == "Sunday"
    assert context["remaining"] == timedelta(days=55, hours=1)


def test_timer_expression_returns_a_datetime(sandbox: Sandbox) -> None:
    assert sandbox.evaluate("days_after(now(), 3)", {}) == NOW + timedelta(days=3)
    assert sandbox.evaluate("'PT' + str(hours) + 'H'", {"hours": 4}) == "PT4H"


def test_math_and_builtins(sandbox: Sandbox) -> None:
    assert sandbox.evaluate("math.ceil(math.sqrt(value))", {"value": 10}) == 4
    assert sandbox.evaluate("round(max(xs) / min(xs), 2)", {"xs": [3, 7]}) == 2.33
    assert sandbox.evaluate("isinstance(x, str) and not isinstance(x, (int, float))", {"x": "a"}) is True
    assert sandbox.evaluate("list(enumerate(zip('ab', reversed([1, 2]))))", {}) == [
        (0, ("a", 2)),
        (1, ("b", 1)),
    ]
    assert sandbox.evaluate("any(v is None for v in d.values())", {"d": {"a": None}}) is True


def test_script_may_catch_its_own_errors(sandbox: Sandbox) -> None:
    script = "try:\n    n = int(raw)\nexcept ValueError:\n    n = 0\n"
    context: dict[str, Any] = {"raw": "twelve"}

    sandbox.execute(script, context)

    assert context["n"] == 0


# What comes back into the task data


def test_only_data_is_written_back(sandbox: Sandbox) -> None:
    script = "def double(x):\n    return 2 * x\nscale = lambda x: x\nkeys = d.keys()\nresult = double(21)\n"
    context: dict[str, Any] = {"d": {"a": 1}}

    sandbox.execute(script, context)

    assert context == {"d": {"a": 1}, "result": 42}


def test_deleted_names_leave_the_task_data(sandbox: Sandbox) -> None:
    context: dict[str, Any] = {"draft": "x", "keep": 1, "_internal": "kept"}

    sandbox.execute("del draft", context)

    assert context == {"keep": 1, "_internal": "kept"}


def test_function_nested_in_data_is_an_error(sandbox: Sandbox) -> None:
    context: dict[str, Any] = {}

    with pytest.raises(ScriptError, match="variable 'handlers' holds a 'function' value"):
        sandbox.execute("handlers = [lambda: 1]", context)

    assert context == {}


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("x = [1e308 * 10]", "variable 'x' holds inf, which task data cannot store"),
        ("x = []\nfor _ in range(200):\n    x = [x]\n", "variable 'x' is nested more than 100 levels deep"),
        ("x = {(1, 2): 'pair'}", "variable 'x' has a dict key that is not a string or number"),
    ],
)
def test_values_task_data_cannot_store_are_errors(sandbox: Sandbox, script: str, message: str) -> None:
    context: dict[str, Any] = {}

    with pytest.raises(ScriptError, match=re.escape(message)):
        sandbox.execute(script, context)

    assert context == {}


def test_shared_nesting_too_big_to_keep_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ScriptMemoryError, match="variable 'c' holds more than 1,000,000 values"):
        sandbox.execute("a = [0] * 500\nb = [a] * 1000\nc = [b, b, b]\n", {})


@pytest.mark.parametrize(
    "script",
    [
        "items.append(lambda: 1)",
        "items[0] = lambda: 1",
        "items += [lambda: 1]",
        "config['nested'].update({'f': lambda: 1})",
        "add = items.extend\nadd([lambda: 1])\n",
    ],
)
def test_function_put_into_existing_data_is_an_error(sandbox: Sandbox, script: str) -> None:
    context: dict[str, Any] = {"items": [1], "config": {"nested": {}}}

    with pytest.raises(ScriptError, match=r"variable '(items|config)' holds a 'function' value"):
        sandbox.execute(script, context)


def test_data_name_rebound_to_a_function_leaves_the_task_data(sandbox: Sandbox) -> None:
    context: dict[str, Any] = {"score": 3, "keep": 1}

    sandbox.execute("score = lambda: 3", context)

    assert context == {"keep": 1}


def test_lazy_expression_results_are_evaluated_within_the_budget(sandbox: Sandbox) -> None:
    context = {"items": [1, 2, 3]}

    assert sandbox.evaluate("(i * 2 for i in items)", context) == [2, 4, 6]
    assert sandbox.evaluate("map(lambda i: i + 1, items)", context) == [2, 3, 4]
    assert sandbox.evaluate("filter(lambda i: i > 1, items)", context) == [2, 3]
    with pytest.raises(ScriptSecurityError, match="must produce a value, not a function"):
        sandbox.evaluate("lambda: 1", context)


def test_extra_names_are_read_only(sandbox: Sandbox) -> None:
    context: dict[str, Any] = {"x": 1}

    sandbox.execute("total = x + offset\noffset = 99\n", context, extra={"offset": 10})

    assert context == {"x": 1, "total": 11}


def test_failed_script_leaves_the_top_level_names_alone(sandbox: Sandbox) -> None:
    context: dict[str, Any] = {"a": 1}

    with pytest.raises(ScriptError):
        sandbox.execute("a = 2\nb = 3\nc = 1 / 0\n", context)

    assert context == {"a": 1}


# How failures are reported


@pytest.mark.parametrize(
    ("script", "message", "line"),
    [
        ("x = 1\ny = x / 0\n", "ZeroDivisionError: division by zero", 2),
        ("x = 1\n\ny = missing + 1\n", "NameError: name 'missing' is not defined", 3),
        ("def f(d):\n    return d['k']\n\nv = f({})\n", "KeyError: 'k'", 2),
        ("x = int('abc')", "ValueError: invalid literal for int() with base 10: 'abc'", 1),
        ("x = {}.y", "AttributeError: 'dict' object has no attribute 'y'", 1),
        ("raise ValueError('bad request')", "ValueError: bad request", 1),
        ("assert 1 == 2, 'mismatch'", "AssertionError: mismatch", 1),
    ],
)
def test_script_failure_names_the_exception_and_line(
    sandbox: Sandbox, script: str, message: str, line: int
) -> None:
    with pytest.raises(ScriptError) as failed:
        sandbox.execute(script, {})

    assert type(failed.value) is ScriptError
    assert failed.value.detail == message
    assert failed.value.line == line


def test_syntax_error_is_a_script_error_with_line(sandbox: Sandbox) -> None:
    with pytest.raises(ScriptError) as failed:
        sandbox.execute("x = 1\ny = (2\n", {})

    assert type(failed.value) is ScriptError
    assert failed.value.detail.startswith("SyntaxError:")
    assert failed.value.line == 2


def test_helper_errors_surface_as_script_errors(sandbox: Sandbox) -> None:
    with pytest.raises(ScriptError, match="KeyError: 'nope'") as failed:
        sandbox.evaluate("setting('nope')", {})

    assert failed.value.line == 1


def test_source_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    compile_source = sandbox_core._compile_source

    def counting(source: str, mode: sandbox_core.Mode) -> Any:
        calls.append(source)
        return compile_source(source, mode)

    monkeypatch.setattr(sandbox_core, "_compile_source", counting)
    sandbox = Sandbox(cache_size=2)

    results = [sandbox.evaluate("x * 2", {"x": n}) for n in range(5)]
    sandbox.evaluate("x + 1", {"x": 1})
    sandbox.evaluate("x - 1", {"x": 1})
    sandbox.evaluate("x * 2", {"x": 1})

    assert results == [0, 2, 4, 6, 8]
    assert calls == ["x * 2", "x + 1", "x - 1", "x * 2"]


def test_one_sandbox_serves_many_threads(sandbox: Sandbox) -> None:
    results: dict[int, list[int]] = {}

    def worker(n: int) -> None:
        results[n] = [sandbox.evaluate("sum(v * k for v in range(10))", {"k": n}) for _ in range(200)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {n: [45 * n] * 200 for n in range(8)}


def test_helper_names_may_not_shadow_builtins_or_guards() -> None:
    with pytest.raises(ValueError, match="'len'"):
        Sandbox({"len": len})
    with pytest.raises(ValueError, match="'_getattr_'"):
        Sandbox({"_getattr_": getattr})


# SpiffWorkflow integration, driven with a stand-in task (tests do not import SpiffWorkflow)


@pytest.fixture
def task() -> SimpleNamespace:
    return SimpleNamespace(
        id=uuid.UUID("00000000-0000-0000-0000-000000000001"),
        task_spec=SimpleNamespace(bpmn_id="Gateway_risk"),
        data={"score": 7},
    )


def test_script_engine_evaluates_and_executes_in_the_sandbox(sandbox: Sandbox, task: SimpleNamespace) -> None:
    engine = SandboxScriptEngine(sandbox)

    assert engine.evaluate(task, "score > threshold", external_context={"threshold": 5}) is True
    assert engine.execute(task, "level = 'high' if score > 5 else 'low'") is True
    assert task.data == {"score": 7, "level": "high"}


def test_script_engine_errors_carry_the_element_and_task(sandbox: Sandbox, task: SimpleNamespace) -> None:
    engine = SandboxScriptEngine(sandbox)

    with pytest.raises(ScriptSecurityError) as refused:
        engine.evaluate(task, "score.__class__")
    with pytest.raises(ScriptError) as failed:
        engine.execute(task, "x = 1\ny = score / 0\n")

    assert refused.value.extra == {"element_id": "Gateway_risk", "task_id": str(task.id)}
    assert (failed.value.line, failed.value.extra["element_id"]) == (2, "Gateway_risk")


def test_script_engine_validate_raises_syntax_error_like_spiff(sandbox: Sandbox) -> None:
    engine = SandboxScriptEngine(sandbox)

    engine.validate("v > 5")
    with pytest.raises(SyntaxError):
        engine.validate("> 5")
    with pytest.raises(ScriptSecurityError):
        engine.validate("v.__class__")


class _WrapperError(Exception):
    """Like Spiff's WorkflowTaskException: the original error in an ``exception`` attribute."""

    def __init__(self, exception: BaseException) -> None:
        super().__init__("Error evaluating expression")
        self.exception = exception


def test_script_error_in_finds_ours_inside_wrappers() -> None:
    ours = ScriptError("NameError: name 'x' is not defined", line=3)
    try:
        try:
            raise ours
        except ScriptError as error:
            raise RuntimeError("Business Rule Task 'decide'") from error
    except RuntimeError as chained:
        found_in_chain = script_error_in(chained)

    assert found_in_chain is ours
    assert script_error_in(_WrapperError(ours)) is ours
    assert script_error_in(ValueError("unrelated")) is None
