"""The names a script sees: built-ins, ``math``, exceptions, refusing stand-ins, helpers and guard hooks."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from engine.sandbox.guards import Guards, Namespace, Refused

_MATH: Final = Namespace(
    "math",
    {
        name: getattr(math, name)
        for name in (  # noqa: SIM905 - a word list reads better than one word per line
            "acos asin atan atan2 ceil copysign cos degrees dist e exp expm1 fabs floor fmod fsum "
            "gcd hypot inf isclose isfinite isinf isnan isqrt log log10 log1p log2 nan pi pow "
            "radians remainder sin sqrt tan tau trunc"
        ).split()
    },
)
_EXCEPTIONS: Final[tuple[type[Exception], ...]] = (
    ArithmeticError,
    AssertionError,
    AttributeError,
    Exception,
    IndexError,
    KeyError,
    LookupError,
    NameError,
    OverflowError,
    RuntimeError,
    TypeError,
    ValueError,
    ZeroDivisionError,
)
# Names a script might try for introspection or I/O: they exist, and refuse with a clear message.
_DENIED: Final = (  # noqa: SIM905 - a word list reads better than one word per line
    "breakpoint bytearray classmethod compile delattr dir eval exec exit format getattr globals "
    "hasattr help id input issubclass iter locals memoryview next object open property quit "
    "setattr staticmethod super type vars"
).split()


def _denied(name: str) -> Callable[..., Any]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise Refused(f"{name}() is not available in process scripts")

    return refuse


def script_builtins(guards: Guards, helpers: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
    """The built-ins a script sees: safe functions and types, guarded stand-ins, exceptions, helpers."""
    names: dict[str, Any] = {
        "abs": abs,
        "all": all,
        "any": any,
        "bool": bool,
        "chr": chr,
        "dict": dict,
        "divmod": divmod,
        "enumerate": enumerate,
        "filter": filter,
        "float": float,
        "frozenset": frozenset,
        "int": int,
        "isinstance": guards.is_instance,
        "len": len,
        "list": list,
        "map": map,
        "math": _MATH,
        "max": max,
        "min": min,
        "ord": ord,
        "range": guards.bounded_range,
        "repr": guards.to_repr,
        "reversed": reversed,
        "round": round,
        "set": set,
        "sorted": sorted,
        "str": guards.to_str,
        "sum": guards.numeric_sum,
        "timedelta": timedelta,
        "tuple": tuple,
        "zip": zip,
    }
    names.update((cls.__name__, cls) for cls in _EXCEPTIONS)
    names.update((name, _denied(name)) for name in _DENIED)
    for name, helper in helpers.items():
        if not name.isidentifier() or name.startswith("_") or name in names:
            raise ValueError(f"helper name {name!r} is not an identifier or clashes with a built-in name")
        names[name] = helper
    return names


def guard_hooks(guards: Guards) -> dict[str, Any]:
    """The functions RestrictedPython and the policy route guarded operations through."""
    return {
        "_getattr_": guards.read_attribute,
        "_getitem_": guards.read_item,
        "_getiter_": iter,
        "_write_": guards.writable,
        "_inplacevar_": guards.inplace,
        "_apply_": guards.apply,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_add_": guards.add,
        "_mul_": guards.multiply,
        "_pow_": guards.power,
        "_lshift_": guards.shift_left,
        "_mod_": guards.modulo,
        "_fstring_": guards.fstring,
        "_unpack_": guards.unpack,
        "_except_": guards.catchable,
        "_augitem_": guards.augmented_item,
    }
