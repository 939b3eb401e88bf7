"""The Sandbox: compiles process scripts under the policy, caches them, and runs them within their limits."""

from __future__ import annotations

import ast
import math
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from itertools import repeat
from types import CodeType, FunctionType, GeneratorType
from typing import Any, Final, Literal

from engine.errors import ScriptError, ScriptMemoryError, ScriptSecurityError, ScriptTimeoutError
from engine.sandbox.budget import start_budget
from engine.sandbox.guards import Abort, Guards, Limits, OutOfMemory, OutOfTime, Refused, text_size
from engine.sandbox.names import guard_hooks, script_builtins
from engine.sandbox.policy import ScriptPolicy, Violation

Mode = Literal["eval", "exec"]

SCRIPT_FILENAME: Final = "<process script>"
_MESSAGE_LIMIT: Final = 500
_MESSAGE_WALK_LIMIT: Final = 10_000

_ABORTS: Final[dict[type[Abort], type[ScriptError]]] = {
    Refused: ScriptSecurityError,
    OutOfTime: ScriptTimeoutError,
    OutOfMemory: ScriptMemoryError,
}
_DATA_LEAVES: Final = (str, int, float, bool, type(None), date, time, timedelta)
_DATA_KEYS: Final = (str, int, float, bool, type(None))
_PLAIN_LEAVES: Final = frozenset({str, int, bool, type(None)})
_DATA_CONTAINERS: Final = (list, tuple, set, frozenset)
_KEEPABLE: Final = (*_DATA_LEAVES, dict, *_DATA_CONTAINERS)
_MUTABLE: Final = (dict, list, set)
_MISSING: Final = object()
_MAX_DEPTH: Final = 100
# Results that would run script code later, outside the budget, if handed back unevaluated.
_LAZY: Final = (GeneratorType, map, filter, zip, enumerate)


@dataclass(frozen=True, slots=True)
class _Compiled:
    code: CodeType | None
    problems: tuple[Violation, ...] = ()
    refused: bool = False
    mutates: bool = True

    def raise_problem(self) -> None:
        if self.code is not None:
            return
        first = self.problems[0]
        detail = "; ".join(p.message for p in self.problems)
        raise (ScriptSecurityError if self.refused else ScriptError)(detail, line=first.line)


class Sandbox:
    """Runs the Python that process designers write (conditions, scripts, timer and DMN expressions).

    ``helpers`` are the functions the engine offers scripts by name (``now``, ``working_days_end``, ...);
    they run as trusted code, outside the CPU budget. ``cpu_seconds`` is the CPU time one evaluation may
    use and ``wall_seconds`` (default twice that) the elapsed time; ``max_sequence`` bounds any string,
    list or tuple built in one operation, ``max_int_bits`` any integer, and ``max_memory_bytes`` how much
    the process may grow while the script runs. Compiled code is cached by source text, up to
    ``cache_size`` entries. One Sandbox serves any number of threads.
    """

    def __init__(
        self,
        helpers: Mapping[str, Callable[..., Any]] | None = None,
        *,
        cpu_seconds: float = 1.0,
        wall_seconds: float | None = None,
        max_sequence: int = 1_000_000,
        max_int_bits: int = 100_000,
        max_memory_bytes: int = 256 * 2**20,
        cache_size: int = 1024,
    ) -> None:
        if cpu_seconds <= 0 or (wall_seconds is not None and wall_seconds <= 0):
            raise ValueError("cpu_seconds and wall_seconds must be positive")
        if min(max_sequence, max_memory_bytes, cache_size) < 1 or max_int_bits < 64:
            raise ValueError("the limits must be positive, and max_int_bits at least 64")
        self.cpu_seconds = cpu_seconds
        self.wall_seconds = wall_seconds if wall_seconds is not None else 2 * cpu_seconds
        self.max_memory_bytes = max_memory_bytes
        self.limits = Limits(max_sequence=max_sequence, max_int_bits=max_int_bits)
        self._guards = Guards(self.limits)
        self._builtins = script_builtins(self._guards, helpers or {})
        self._hooks = guard_hooks(self._guards)
        self._cache: OrderedDict[tuple[Mode, str], _Compiled] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def evaluate(
        self, expression: str, context: Mapping[str, Any], *, extra: Mapping[str, Any] | None = None
    ) -> Any:
        """Evaluate an expression against ``context`` and the read-only names in ``extra``; return its value.

        A generator, ``map``, ``filter``, ``zip`` or ``enumerate`` result is turned into a list here, within
        the budget, and a function result is refused: nothing the script made runs after it returns.
        Raises ScriptError (or a subclass) on any failure, with the line of the script where it happened.
        """
        compiled = self._compile(expression, "eval")
        names = self._names(context, extra)
        return self._run(compiled, names, "eval")

    def execute(
        self, script: str, context: dict[str, Any], *, extra: Mapping[str, Any] | None = None
    ) -> None:
        """Run a script; the variables it assigns, removes or rebinds are written back to ``context``.

        Only data is written back (dicts, lists, tuples, sets, strings, numbers, booleans, None and dates):
        functions and other working values the script made stay behind, as do names from ``extra``. Data
        that holds anything else, or more than ``max_sequence`` values, is a ScriptError. If the script
        fails, ``context`` keeps its top-level names (objects it mutated in place stay mutated).
        """
        compiled = self._compile_cached(script, "exec")
        compiled.raise_problem()
        assert compiled.code is not None  # noqa: S101 - raise_problem returns only when there is code
        names = self._names(context, extra)
        self._run(compiled.code, names, "exec")
        self._write_back(names, context, extra or {}, filled_in_place=compiled.mutates)

    def check(self, source: str, *, mode: Mode) -> list[str]:
        """Compile without running and list what is wrong, each message starting with its line number."""
        return [
            f"line {p.line}: {p.message}" if p.line is not None else p.message
            for p in self._compile_cached(source, mode).problems
        ]

    def prepare(self, source: str, *, mode: Mode) -> None:
        """Compile into the cache, raising the error ``evaluate``/``execute`` would raise for bad source.

        Syntax errors raise ScriptError, policy violations ScriptSecurityError; use it to refuse a process
        definition at deployment rather than at run time.
        """
        self._compile(source, mode)

    # Compilation

    def _compile(self, source: str, mode: Mode) -> CodeType:
        compiled = self._compile_cached(source, mode)
        compiled.raise_problem()
        assert compiled.code is not None  # noqa: S101 - raise_problem returns only when there is code
        return compiled.code

    def _compile_cached(self, source: str, mode: Mode) -> _Compiled:
        key = (mode, source)
        with self._cache_lock:
            compiled = self._cache.get(key)
            if compiled is not None:
                self._cache.move_to_end(key)
                return compiled
        compiled = _compile_source(source, mode)
        with self._cache_lock:
            self._cache[key] = compiled
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    # Running

    def _names(self, context: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
        # The hooks come last, so task data cannot replace them (scripts cannot name them anyway).
        return {
            **(extra or {}),
            **context,
            **self._hooks,
            "__builtins__": self._builtins,
            "_tick_": start_budget(self.cpu_seconds, self.wall_seconds, self.max_memory_bytes),
        }

    def _run(self, code: CodeType, names: dict[str, Any], mode: Mode) -> Any:
        try:
            if mode == "eval":
                result = eval(code, names)  # noqa: S307 - code compiled under ScriptPolicy, run with guarded builtins
                if isinstance(result, _LAZY):
                    return list(result)
                if isinstance(result, FunctionType):
                    raise Refused("an expression must produce a value, not a function")
                return result
            exec(code, names)  # noqa: S102 - code compiled under ScriptPolicy, run with guarded builtins
            return None
        except ScriptError as error:
            names.clear()
            if error.line is None:
                error.line = _script_line(error)
            raise
        except (Abort, Exception) as error:
            # Whatever the script built goes now, not when the caller lets go of the error.
            names.clear()
            failure = _failure(error)
            if type(failure) is ScriptError:
                raise failure from error
        # Raised outside the handler, so the sandbox's internal exception does not ride along.
        raise failure

    def _write_back(
        self,
        names: dict[str, Any],
        context: dict[str, Any],
        extra: Mapping[str, Any],
        *,
        filled_in_place: bool,
    ) -> None:
        removed = [k for k in context if isinstance(k, str) and not k.startswith("_") and k not in names]
        updates: dict[str, Any] = {}
        for name, value in names.items():
            if name.startswith("_") or (name in extra and name not in context):
                continue
            previous = context.get(name, _MISSING)
            if not isinstance(value, _KEEPABLE):
                # Functions, iterators and the like are working values: they never reach task data,
                # and a data name the script rebound to one leaves it (as in SpiffWorkflow).
                if previous is not _MISSING and previous is not value:
                    removed.append(name)
                continue
            # A script that can fill containers in place has its unchanged containers checked too.
            if previous is not value or (filled_in_place and isinstance(value, _MUTABLE)):
                self._check_data(name, value)
            if previous is not value:
                updates[name] = value
        for name in removed:
            del context[name]
        context.update(updates)

    def _check_data(self, name: str, value: object) -> None:
        """Refuse what task data cannot hold: non-data values, non-finite numbers, too much or too deep."""
        room = self.limits.max_sequence
        pending: list[tuple[object, int]] = [(value, 0)]
        while pending:
            item, depth = pending.pop()
            kind = type(item)
            if kind in _PLAIN_LEAVES:
                continue
            if isinstance(item, float):
                if not math.isfinite(item):
                    raise ScriptError(f"variable '{name}' holds {item}, which task data cannot store")
                continue
            if isinstance(item, _DATA_LEAVES):
                continue
            if depth >= _MAX_DEPTH:
                raise ScriptError(f"variable '{name}' is nested more than {_MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                if not all(type(key) in _PLAIN_LEAVES or isinstance(key, _DATA_KEYS) for key in item):
                    raise ScriptError(f"variable '{name}' has a dict key that is not a string or number")
                children: Collection[Any] = item.values()
            elif isinstance(item, _DATA_CONTAINERS):
                children = item
            else:
                raise ScriptError(
                    f"variable '{name}' holds a '{type(item).__name__}' value; task data may only hold "
                    "dicts, lists, strings, numbers, booleans, None and dates"
                )
            room -= len(children)
            if room < 0:
                raise ScriptMemoryError(
                    f"variable '{name}' holds more than {self.limits.max_sequence:,} values, "
                    "too many to keep in task data"
                )
            pending.extend(zip(children, repeat(depth + 1)))


def _compile_source(source: str, mode: Mode) -> _Compiled:
    if not isinstance(source, str):
        return _Compiled(None, (Violation(None, f"a script must be text, not {type(source).__name__}"),))
    offset = 0
    if mode == "eval":
        # Conditions arrive with the indentation of the XML around them; eval() ignores it too.
        stripped = source.lstrip()
        offset = source[: len(source) - len(stripped)].count("\n")
        text = stripped.rstrip()
    else:
        text = textwrap.dedent(source)
    try:
        tree = ast.parse(text, filename=SCRIPT_FILENAME, mode=mode)
        if offset:
            ast.increment_lineno(tree, offset)
        policy = ScriptPolicy()
        tree = policy.visit(tree)
        if policy.violations:
            return _Compiled(None, tuple(policy.violations), refused=True)
        code = compile(ast.fix_missing_locations(tree), SCRIPT_FILENAME, mode)
    except SyntaxError as error:
        line = error.lineno + offset if error.lineno is not None else None
        return _Compiled(None, (Violation(line, f"{type(error).__name__}: {error.msg}"),))
    except (RecursionError, MemoryError, ValueError) as error:
        return _Compiled(None, (Violation(None, f"the script cannot be compiled: {type(error).__name__}"),))
    return _Compiled(code, mutates=policy.mutates)


def _script_line(error: BaseException) -> int | None:
    """The line of the innermost script frame the error passed through."""
    line = None
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


def _failure(error: BaseException) -> ScriptError:
    """The domain error for a failed script; an Abort behind the error wins over the error itself.

    The Abort can sit in the context chain when it unwound into a handler that failed in turn, e.g. an
    ``except`` clause naming an undefined class.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, Abort):
            return _ABORTS[type(current)](str(current), line=_script_line(current))
        seen.add(id(current))
        current = current.__context__
    return _as_script_error(error)


def _as_script_error(error: BaseException) -> ScriptError:
    name = type(error).__name__
    if text_size(error, _MESSAGE_WALK_LIMIT) > _MESSAGE_WALK_LIMIT:
        message = f"{name} (message too long to show)"
    else:
        text = str(error)
        if len(text) > _MESSAGE_LIMIT:
            text = text[:_MESSAGE_LIMIT] + "..."
        message = f"{name}: {text}" if text else name
    cls = ScriptMemoryError if isinstance(error, MemoryError) else ScriptError
    return cls(message, line=_script_line(error))
