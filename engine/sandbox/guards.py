"""Runtime guards for process scripts: what may be read, called and written, and how big a value may grow.

Attribute access is an allow-list per type: the methods of strings, lists, dicts, sets, tuples, numbers and
dates that process data needs, and nothing else (no ``format``, no class or function attributes, nothing
on generators or exceptions but ``args``). Every operation that can build a large value in one step
(``*``, ``**``, ``<<``, ``+`` on sequences, ``%`` and f-string formatting, ``str.join``/``replace``/padding,
``list.extend``, slice assignment, ``[*a, *b]``, ``range``) estimates the size of its result first and
refuses beyond the limits instead of letting the process run out of memory.

The refusals are :class:`Abort` subclasses, derived from ``BaseException`` so that a script's ``except
Exception`` cannot catch them; :mod:`engine.sandbox.core` turns them into domain errors.
"""

from __future__ import annotations

import math
import operator
import re
import sys
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, ValuesView
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final


class Abort(BaseException):
    """Stops a script. Not an ``Exception``, so ``except Exception`` in a script cannot swallow it."""


class Refused(Abort):
    """The sandbox refused an operation."""


class OutOfTime(Abort):
    """The CPU budget is spent."""


class OutOfMemory(Abort):
    """The operation would build a value beyond the limits."""


@dataclass(frozen=True, slots=True)
class Limits:
    """``max_sequence`` bounds the length of any string, list or tuple a script builds in one operation (and
    of a ``range``); ``max_int_bits`` bounds the size of integers."""

    max_sequence: int
    max_int_bits: int


class Namespace:
    """A read-only set of names reached with a dot (``math.sqrt``), readable only through the guard."""

    __slots__ = ("_members", "_name")

    def __init__(self, name: str, members: Mapping[str, object]) -> None:
        self._name = name
        self._members = dict(members)

    def member(self, attribute: str) -> object:
        try:
            return self._members[attribute]
        except KeyError:
            raise AttributeError(f"{self._name} has no attribute '{attribute}'") from None

    def __repr__(self) -> str:
        return f"<{self._name}>"


_STR_METHODS: Final = frozenset(
    (  # noqa: SIM905 - a word list reads better than one word per line
        "capitalize casefold center count endswith expandtabs find index isalnum isalpha isascii "
        "isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle isupper "
        "join ljust lower lstrip partition removeprefix removesuffix replace rfind rindex rjust "
        "rpartition rsplit rstrip split splitlines startswith strip swapcase title upper zfill"
    ).split()
)
_DATE_ATTRIBUTES: Final = frozenset(
    (  # noqa: SIM905 - a word list reads better than one word per line
        "year month day weekday isoweekday isocalendar isoformat strftime replace toordinal"
    ).split()
)
_TIME_ATTRIBUTES: Final = frozenset(
    (  # noqa: SIM905 - a word list reads better than one word per line
        "hour minute second microsecond tzinfo fold isoformat strftime replace utcoffset tzname"
    ).split()
)
_ATTRIBUTES: Final[dict[type, frozenset[str]]] = {
    str: _STR_METHODS,
    list: frozenset(
        ("append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort")
    ),
    dict: frozenset(
        ("clear", "copy", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values")
    ),
    set: frozenset(
        (  # noqa: SIM905 - a word list reads better than one word per line
            "add clear copy difference difference_update discard intersection intersection_update "
            "isdisjoint issubset issuperset pop remove symmetric_difference "
            "symmetric_difference_update union update"
        ).split()
    ),
    frozenset: frozenset(
        (  # noqa: SIM905 - a word list reads better than one word per line
            "copy difference intersection isdisjoint issubset issuperset symmetric_difference union"
        ).split()
    ),
    tuple: frozenset({"count", "index"}),
    int: frozenset({"bit_length"}),
    float: frozenset({"is_integer"}),
    range: frozenset({"start", "stop", "step", "count", "index"}),
    datetime: _DATE_ATTRIBUTES | _TIME_ATTRIBUTES | {"date", "time", "timetz", "astimezone", "timestamp"},
    date: _DATE_ATTRIBUTES,
    time: _TIME_ATTRIBUTES,
    timedelta: frozenset({"days", "seconds", "microseconds", "total_seconds"}),
    BaseException: frozenset({"args"}),
}
# Methods whose result can be much larger than their inputs; the guard hands out a checking wrapper.
_AMPLIFYING: Final[dict[type, frozenset[str]]] = {
    str: frozenset({"center", "expandtabs", "join", "ljust", "replace", "rjust", "zfill"}),
    list: frozenset({"extend"}),
    datetime: frozenset({"strftime"}),
    date: frozenset({"strftime"}),
    time: frozenset({"strftime"}),
}
_attribute_policies: dict[type, tuple[type | None, frozenset[str]]] = {}

_SEQUENCES: Final = (str, bytes, list, tuple)
_VIEWS: Final = (KeysView, ValuesView, ItemsView)
_SIZED: Final = (str, bytes, list, tuple, dict, set, frozenset, range, *_VIEWS)
_CONTAINERS: Final = (list, tuple, dict, set, frozenset, *_VIEWS)
_TEXT_WALKED: Final = (*_CONTAINERS, BaseException)
_SUBSCRIPTABLE: Final = (dict, list, tuple, str, bytes, range)
_INPLACE: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}
_PERCENT_FIELD: Final = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_NUMBER: Final = re.compile(r"\d+")
# strftime and date format specs expand each character to a bounded number of characters ("%c" to 24).
_FORMAT_EXPANSION: Final = 32


def _attribute_policy(cls: type) -> tuple[type | None, frozenset[str]]:
    policy = _attribute_policies.get(cls)
    if policy is None:
        policy = (None, frozenset())
        for base in cls.__mro__:
            allowed = _ATTRIBUTES.get(base)
            if allowed is not None:
                policy = (base, allowed)
                break
        _attribute_policies[cls] = policy
    return policy


def text_size(value: object, limit: int) -> int:
    """Estimate ``len(str(value))`` without building it, stopping as soon as the estimate passes ``limit``.

    Containers are walked, counting shared references each time, because that is what ``str`` does: a
    list holding the same big list a thousand times prints a thousand copies.
    """
    total = 0
    pending: list[object] = [value]
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 3
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            if total <= limit:
                pending.extend(item.keys())
                pending.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            total += 2 + 2 * len(item)
            if total <= limit:
                pending.extend(item)
        elif isinstance(item, BaseException):
            total += 32
            pending.extend(item.args)
        else:
            total += 64
    return total


def _length(iterable: Iterable[Any]) -> tuple[Iterable[Any], int]:
    """The length of an iterable, materialising it if it has none (a generator is ticked as it runs)."""
    if isinstance(iterable, _SIZED):
        return iterable, len(iterable)
    items = list(iterable)
    return items, len(items)


class Guards:
    """The runtime hooks that compiled scripts call, bound to one set of limits. Stateless and thread-safe."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    # Sizes

    def check_length(self, length: int) -> None:
        if length > self.limits.max_sequence:
            raise OutOfMemory(
                f"the script would create a value of at least {length:,} items or characters "
                f"(limit {self.limits.max_sequence:,})"
            )

    def check_bits(self, bits: float) -> None:
        if bits > self.limits.max_int_bits:
            raise OutOfMemory(
                f"the script would create a number of about {bits:,.0f} bits "
                f"(limit {self.limits.max_int_bits:,})"
            )

    def check_text(self, value: object) -> None:
        if isinstance(value, _TEXT_WALKED):
            self.check_length(text_size(value, self.limits.max_sequence))

    def check_format_spec(self, spec: str) -> None:
        self.check_length(len(spec) * _FORMAT_EXPANSION)
        for number in _NUMBER.findall(spec):
            self.check_length(int(number) if len(number) < 10 else sys.maxsize)

    # Attribute, item, iteration and write access

    def read_attribute(self, obj: object, name: str) -> Any:
        if type(obj) is Namespace:
            return obj.member(name)
        base, allowed = _attribute_policy(type(obj))
        if name not in allowed:
            kind = obj.__name__ if isinstance(obj, type) else type(obj).__name__
            if name.startswith("_") or hasattr(obj, name):
                raise Refused(f"'{kind}.{name}' is not available in process scripts")
            raise AttributeError(f"'{kind}' object has no attribute '{name}'")
        value = getattr(obj, name)
        if base is not None and name in _AMPLIFYING.get(base, ()):
            return self._checked_method(obj, name, value)
        return value

    def read_item(self, obj: object, key: object) -> Any:
        if isinstance(key, str) and key.startswith("__"):
            raise Refused(f"the key '{key}' is not available in process scripts")
        if isinstance(obj, _SUBSCRIPTABLE):
            return obj[key]  # type: ignore[call-overload,index]
        raise Refused(f"subscripting a '{type(obj).__name__}' object is not available in process scripts")

    def writable(self, obj: object) -> Any:
        if isinstance(obj, dict):
            return obj
        if isinstance(obj, list):
            return _ListWriter(obj, self)
        raise Refused(f"a '{type(obj).__name__}' object cannot be modified in a process script")

    def augmented_item(self, container: object, key: object, op: str, value: object) -> None:
        self.writable(container)[key] = self.inplace(op, self.read_item(container, key), value)

    def catchable(self, spec: object) -> object:
        for cls in spec if isinstance(spec, tuple) else (spec,):
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                raise Refused("only exception classes such as ValueError can be caught")
        return spec

    def apply(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.check_length(len(args) + len(kwargs))
        return func(*args, **kwargs)

    # Operators

    def add(self, left: Any, right: Any) -> Any:
        self._check_add(left, right)
        return left + right

    def multiply(self, left: Any, right: Any) -> Any:
        self._check_multiply(left, right)
        return left * right

    def power(self, left: Any, right: Any) -> Any:
        self._check_power(left, right)
        return left**right

    def shift_left(self, left: Any, right: Any) -> Any:
        self._check_shift(left, right)
        return left << right

    def modulo(self, left: Any, right: Any) -> Any:
        if isinstance(left, str | bytes):
            self._check_percent_format(left, right)
        return left % right

    def inplace(self, op: str, target: Any, value: Any) -> Any:
        if op == "+=":
            self._check_add(target, value)
        elif op == "*=":
            self._check_multiply(target, value)
        elif op == "**=":
            self._check_power(target, value)
        elif op == "<<=":
            self._check_shift(target, value)
        elif op == "%=" and isinstance(target, str | bytes):
            self._check_percent_format(target, value)
        return _INPLACE[op](target, value)

    def _check_add(self, left: object, right: object) -> None:
        if isinstance(left, _SEQUENCES) and isinstance(right, _SIZED):
            self.check_length(len(left) + len(right))

    def _check_multiply(self, left: object, right: object) -> None:
        if isinstance(left, int):
            if isinstance(right, int):
                self.check_bits(left.bit_length() + right.bit_length())
            elif isinstance(right, _SEQUENCES):
                self.check_length(len(right) * left)
        elif isinstance(left, _SEQUENCES) and isinstance(right, int):
            self.check_length(len(left) * right)

    def _check_power(self, base: object, exponent: object) -> None:
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 1 and abs(base) > 1:
            self.check_bits(exponent * math.log2(abs(base)))

    def _check_shift(self, value: object, shift: object) -> None:
        if isinstance(value, int) and isinstance(shift, int) and value and shift > 0:
            self.check_bits(value.bit_length() + shift)

    def _check_percent_format(self, template: str | bytes, args: object) -> None:
        text = template.decode("latin-1") if isinstance(template, bytes) else template
        total = len(text)
        for field in _PERCENT_FIELD.finditer(text):
            for number in field.groups():
                if number == "*":
                    raise Refused("'*' widths in %-formatting are not allowed; use an f-string")
                if number:
                    total += int(number) if len(number) < 10 else sys.maxsize
        self.check_length(total + text_size(args, self.limits.max_sequence))

    # Building values

    def bounded_range(self, *args: int) -> range:
        values = range(*args)
        try:
            length = len(values)
        except OverflowError:
            length = sys.maxsize
        self.check_length(length)
        return values

    def numeric_sum(self, iterable: Iterable[Any], /, start: Any = 0) -> Any:
        if not isinstance(start, int | float | timedelta):
            raise TypeError("sum() adds numbers or timedeltas; use str.join() or list.extend() for the rest")
        return sum(iterable, start)

    def unpack(self, kind: str, *chunks: Iterable[Any]) -> list[Any] | tuple[Any, ...]:
        items: list[Any] = []
        for chunk in chunks:
            values, length = _length(chunk)
            self.check_length(len(items) + length)
            items.extend(values)
        return tuple(items) if kind == "tuple" else items

    def to_str(self, value: object = "") -> str:
        if type(value) is str:
            return value
        self.check_text(value)
        return str(value)

    def to_repr(self, value: object) -> str:
        self.check_text(value)
        return repr(value)

    def is_instance(self, value: object, classinfo: Any) -> bool:
        # The script's ``str`` is the guarded converter; it stands for the str type here.
        if isinstance(classinfo, tuple):
            classinfo = tuple(str if cls == self.to_str else cls for cls in classinfo)
        elif classinfo == self.to_str:
            classinfo = str
        return isinstance(value, classinfo)

    def fstring(self, parts: tuple[Any, ...]) -> str:
        pieces: list[str] = []
        total = 0
        for part in parts:
            piece = part if isinstance(part, str) else self._format_value(*part)
            total += len(piece)
            self.check_length(total)
            pieces.append(piece)
        return "".join(pieces)

    def _format_value(self, value: object, conversion: int, spec: str | None) -> str:
        if conversion == ord("s"):
            value = self.to_str(value)
        elif conversion == ord("r"):
            value = self.to_repr(value)
        elif conversion == ord("a"):
            self.check_text(value)
            value = ascii(value)
        if spec:
            self.check_format_spec(spec)
            return format(value, spec)
        return self.to_str(value)

    # Methods whose results can dwarf their inputs

    def _checked_method(self, obj: object, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        if isinstance(obj, list):
            return self._checked_extend(obj)
        if not isinstance(obj, str):
            return self._checked_strftime(method)
        if name == "join":
            return self._checked_join(obj)
        if name == "replace":
            return self._checked_replace(obj)
        if name == "expandtabs":
            return self._checked_expandtabs(obj)

        def pad(width: int, *args: Any) -> Any:
            self.check_length(width)
            return method(width, *args)

        return pad

    def _checked_extend(self, target: list[Any]) -> Callable[[Iterable[Any]], None]:
        def extend(iterable: Iterable[Any], /) -> None:
            values, length = _length(iterable)
            self.check_length(len(target) + length)
            target.extend(values)

        return extend

    def _checked_join(self, separator: str) -> Callable[[Iterable[Any]], str]:
        def join(iterable: Iterable[Any], /) -> str:
            parts = list(iterable)
            size = len(separator) * max(len(parts) - 1, 0)
            self.check_length(size + sum(len(part) for part in parts if isinstance(part, str)))
            return separator.join(parts)

        return join

    def _checked_replace(self, text: str) -> Callable[..., str]:
        def replace(old: str, new: str, count: int = -1, /) -> str:
            if isinstance(old, str) and isinstance(new, str):
                hits = text.count(old) if old else len(text) + 1
                if count >= 0:
                    hits = min(hits, count)
                self.check_length(len(text) + hits * max(len(new) - len(old), 0))
            return text.replace(old, new, count)

        return replace

    def _checked_expandtabs(self, text: str) -> Callable[..., str]:
        def expandtabs(tabsize: int = 8) -> str:
            self.check_length(len(text) + text.count("\t") * max(tabsize, 0))
            return text.expandtabs(tabsize)

        return expandtabs

    def _checked_strftime(self, method: Callable[[str], str]) -> Callable[[str], str]:
        def strftime(pattern: str, /) -> str:
            if isinstance(pattern, str):
                self.check_length(len(pattern) * _FORMAT_EXPANSION)
            return method(pattern)

        return strftime


class _ListWriter:
    """What ``_write_`` hands out for a list: item writes pass through, slice writes are size-checked."""

    __slots__ = ("_guards", "_target")
    _guards: Guards
    _target: list[Any]

    def __init__(self, target: list[Any], guards: Guards) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_guards", guards)

    def __setitem__(self, key: Any, value: Any) -> None:
        target: list[Any] = self._target
        if isinstance(key, slice):
            start, stop, step = key.indices(len(target))
            if step == 1:
                value, length = _length(value)
                self._guards.check_length(len(target) - max(stop - start, 0) + length)
        target[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._target[key]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"'list' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"'list' object has no attribute '{name}'")
