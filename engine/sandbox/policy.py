# ruff: noqa: N802 - ast.NodeVisitor dispatches on visit_<NodeClassName>
"""What a process script may say, checked and rewritten at compile time on top of RestrictedPython.

RestrictedPython already refuses names and attributes that start with ``_``, the frame and generator
attributes, ``exec``/``eval`` calls and ``async``; it routes attribute, item, iteration and write access
through the ``_getattr_``/``_getitem_``/``_getiter_``/``_write_`` hooks. This policy narrows the language
further (no imports, classes, decorators, ``yield``, ``with``, ``print`` or bare ``except``) and weaves in
the calls the runtime needs:

* ``_tick_()`` at the top of every loop body and function, in every lambda and comprehension clause, so
  the CPU budget is checked however the script spins;
* ``_add_``/``_mul_``/``_pow_``/``_lshift_``/``_mod_`` around the operators that can build huge values;
* ``_fstring_`` for f-strings, ``_unpack_`` for ``[*a, *b]`` displays and ``_augitem_`` for
  ``data["n"] += 1``, each of which checks the size of what it is about to build;
* ``_except_`` around every exception type a handler names, so only ``Exception`` subclasses are caught.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Final, NamedTuple, cast

from RestrictedPython.transformer import IOPERATOR_TO_STR, RestrictingNodeTransformer

_OPERATOR_GUARDS: Final[dict[type[ast.operator], str]] = {
    ast.Add: "_add_",
    ast.Mult: "_mul_",
    ast.Pow: "_pow_",
    ast.LShift: "_lshift_",
    ast.Mod: "_mod_",
}
_UNCATCHABLE: Final = frozenset({"BaseException", "GeneratorExit", "KeyboardInterrupt", "SystemExit"})
_FORMAT_METHODS: Final = frozenset({"format", "format_map"})
# Methods that put new values into an existing list, dict or set.
_FILLING_METHODS: Final = frozenset(
    {"add", "append", "extend", "insert", "setdefault", "symmetric_difference_update", "update"}
)

_T_visit_return = ast.AST | Iterable[ast.AST] | None


class Violation(NamedTuple):
    """One reason the policy refused a script."""

    line: int | None
    message: str


def _call(name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    call = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=args, keywords=[])
    return ast.copy_location(call, like)


def _tick(like: ast.AST) -> ast.Call:
    return _call("_tick_", [], like)


class ScriptPolicy(RestrictingNodeTransformer):
    """A RestrictedPython policy for process scripts.

    ``violations`` lists what it refused; ``mutates`` says whether the script can put new values into
    containers it did not create (item or attribute writes, augmented assignment, filling methods).
    """

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[Violation] = []
        self.mutates = False

    def error(self, node: ast.AST, info: str) -> None:
        self.violations.append(Violation(getattr(node, "lineno", None), info.rstrip(".")))
        super().error(node, info)

    def check_name(self, node: ast.AST, name: str | None, allow_magic_methods: bool = False) -> None:  # noqa: FBT001, FBT002 - signature of the base class
        # Scripts define no classes, so no name may use the magic-method exemption.
        super().check_name(node, name, allow_magic_methods=False)  # type: ignore[arg-type]

    # Statements the language of process scripts does without.

    def visit_Import(self, node: ast.Import) -> _T_visit_return:
        self.error(node, "import statements are not allowed; use the functions the engine provides")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> _T_visit_return:
        self.error(node, "import statements are not allowed; use the functions the engine provides")
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> _T_visit_return:
        self.error(node, "class definitions are not allowed")
        return node

    def visit_With(self, node: ast.With) -> _T_visit_return:
        self.error(node, "with statements are not allowed")
        return node

    def visit_Yield(self, node: ast.Yield) -> _T_visit_return:
        self.error(node, "yield is not allowed; build a list instead")
        return node

    def visit_YieldFrom(self, node: ast.YieldFrom) -> _T_visit_return:
        self.error(node, "yield is not allowed; build a list instead")
        return node

    def visit_Global(self, node: ast.Global) -> _T_visit_return:
        for name in node.names:
            self.check_name(node, name)
        return node

    def visit_Name(self, node: ast.Name) -> _T_visit_return:
        if node.id in ("print", "printed"):
            self.error(node, "print is not available; assign the value to a variable instead")
            return node
        return super().visit_Name(node)

    def visit_Attribute(self, node: ast.Attribute) -> _T_visit_return:
        if node.attr in _FORMAT_METHODS:
            self.error(node, f"str.{node.attr}() is not allowed; use an f-string")
        if not isinstance(node.ctx, ast.Load) or node.attr in _FILLING_METHODS:
            self.mutates = True
        return super().visit_Attribute(node)

    def visit_Subscript(self, node: ast.Subscript) -> _T_visit_return:
        if not isinstance(node.ctx, ast.Load):
            self.mutates = True
        return super().visit_Subscript(node)

    # Loops, functions and comprehensions check the CPU budget on every pass.

    def visit_While(self, node: ast.While) -> _T_visit_return:
        node = self.node_contents_visit(node)
        node.body.insert(0, ast.copy_location(ast.Expr(_tick(node)), node))
        return node

    def visit_For(self, node: ast.For) -> _T_visit_return:
        guarded = cast(ast.For, self.guard_iter(node))
        guarded.body.insert(0, ast.copy_location(ast.Expr(_tick(guarded)), guarded))
        return guarded

    def visit_FunctionDef(self, node: ast.FunctionDef) -> _T_visit_return:
        if node.decorator_list:
            self.error(node, "decorators are not allowed")
        visited = cast(ast.FunctionDef, super().visit_FunctionDef(node))
        visited.body.insert(0, ast.copy_location(ast.Expr(_tick(visited)), visited))
        return visited

    def visit_Lambda(self, node: ast.Lambda) -> _T_visit_return:
        visited = cast(ast.Lambda, super().visit_Lambda(node))
        # The tick returns True, so ``_tick_() and body`` is the body.
        visited.body = ast.copy_location(
            ast.BoolOp(op=ast.And(), values=[_tick(visited), visited.body]), visited
        )
        return visited

    def visit_comprehension(self, node: ast.comprehension) -> _T_visit_return:
        guarded = cast(ast.comprehension, self.guard_iter(node))
        guarded.ifs.insert(0, _tick(guarded.iter))
        return guarded

    # Exception handlers may only catch Exception subclasses: the budget and guard errors are not.

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> _T_visit_return:
        if node.type is None:
            self.error(node, "a bare 'except:' is not allowed; name the exception, e.g. 'except ValueError:'")
        else:
            for child in ast.walk(node.type):
                if isinstance(child, ast.Name) and child.id in _UNCATCHABLE:
                    self.error(node, f"catching {child.id} is not allowed; catch Exception or a subclass")
        visited = cast(ast.ExceptHandler, super().visit_ExceptHandler(node))
        if visited.type is not None:
            visited.type = _call("_except_", [visited.type], visited.type)
        return visited

    # Operations that can allocate without bound go through a size-checking helper.

    def visit_BinOp(self, node: ast.BinOp) -> _T_visit_return:
        visited = self.node_contents_visit(node)
        guard = _OPERATOR_GUARDS.get(type(visited.op))
        if guard is None:
            return visited
        return _call(guard, [visited.left, visited.right], visited)

    def visit_AugAssign(self, node: ast.AugAssign) -> _T_visit_return:
        self.mutates = True
        if not isinstance(node.target, ast.Subscript):
            return super().visit_AugAssign(node)
        # data["n"] += 1 becomes _augitem_(data, "n", "+=", 1): read, combine and write back, all guarded.
        container = cast(ast.expr, self.visit(node.target.value))
        key = cast(ast.expr, self.visit(node.target.slice))
        value = cast(ast.expr, self.visit(node.value))
        operator = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        call = _call("_augitem_", [container, key, operator, value], node)
        return ast.copy_location(ast.Expr(call), node)

    def visit_List(self, node: ast.List) -> _T_visit_return:
        return self._display(self.node_contents_visit(node), "list")

    def visit_Tuple(self, node: ast.Tuple) -> _T_visit_return:
        return self._display(self.node_contents_visit(node), "tuple")

    def _display(self, node: ast.List | ast.Tuple, kind: str) -> ast.expr:
        if not isinstance(node.ctx, ast.Load) or not any(isinstance(e, ast.Starred) for e in node.elts):
            return node
        chunks: list[ast.expr] = [ast.Constant(kind)]
        for element in node.elts:
            if isinstance(element, ast.Starred):
                chunks.append(element.value)
            else:
                chunks.append(ast.copy_location(ast.Tuple(elts=[element], ctx=ast.Load()), element))
        return _call("_unpack_", chunks, node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> _T_visit_return:
        visited = self.node_contents_visit(node)
        if not any(isinstance(value, ast.FormattedValue) for value in visited.values):
            return visited
        parts: list[ast.expr] = []
        for value in visited.values:
            if isinstance(value, ast.FormattedValue):
                spec = value.format_spec if value.format_spec is not None else ast.Constant(None)
                parts.append(
                    ast.Tuple(elts=[value.value, ast.Constant(value.conversion), spec], ctx=ast.Load())
                )
            else:
                parts.append(value)
        return _call("_fstring_", [ast.Tuple(elts=parts, ctx=ast.Load())], visited)
