"""Generate an engine's scalar fast paths from the registry's rule expressions.

Interpreting a registry entry per scalar op (look up the rule, call it, build tuples)
costs more than the arithmetic itself. So, as ChainRules' `@scalar_rule` expands into
code, each engine turns an op's `scalar` and `partials` expressions into one Python
function per op, specialised to Python floats, with the generic path (`bind`) as the
fallback for everything else. The rules still have a single source: the registry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adkit.ops.core import REGISTRY, Op, bind, scalar_namespace

# dunder name -> (op name, traced side): "left" when self is the first operand
DUNDERS = {
    "__add__": ("add", "left"),
    "__radd__": ("add", "right"),
    "__sub__": ("sub", "left"),
    "__rsub__": ("sub", "right"),
    "__mul__": ("mul", "left"),
    "__rmul__": ("mul", "right"),
    "__truediv__": ("div", "left"),
    "__rtruediv__": ("div", "right"),
    "__pow__": ("pow", "left"),
    "__rpow__": ("pow", "right"),
    "__neg__": ("neg", "unary"),
}


def fast_ops() -> list[Op]:
    """Ops that get a generated fast path: elementwise, one or two inputs, no params."""
    return [
        op
        for op in REGISTRY.values()
        if isinstance(op.partials, tuple)
        and op.scalar is not None
        and not op.params
        and not op.variadic
        and op.args in (("x",), ("x", "y"))
    ]


def compile_template(template: str, op: Op, side: str, names: dict[str, Any]) -> Any:
    """Fill a template with the op's expressions and compile it in the given namespace.

    Placeholders: OUT (value expression), P0 / P1 (partials of the first / second
    argument). In a template for side "left" the traced operand is x, the other y;
    for "right" the traced operand is y.
    """
    parts = op.partials
    src = template.replace("OUT", f"({op.scalar})")
    src = src.replace("P0", f"({parts[0]})")
    if len(parts) > 1:
        src = src.replace("P1", f"({parts[1]})")
    ns = {**names, "OP": op}
    exec(compile(src, f"<fast {op.name} {side}>", "exec"), ns)  # noqa: S102 (registry rules, never user input)
    return ns["fast"]


def install(cls: type, templates: dict[str, str], extra_names: dict[str, Any] | None = None) -> None:
    """Give the float tracer class `cls` its generated dunders, and register a fast
    function per op in `op.fast[cls]` (used by `Op.__call__`). `extra_names` are globals
    the templates use besides the class, the scalar functions and `bind`."""
    names = {**scalar_namespace(), cls.__name__: cls, "f64": np.float64, "bind": bind, "NOPARAMS": {}}
    names.update(extra_names or {})
    by_name = {op.name: op for op in fast_ops()}
    for dunder, (name, side) in DUNDERS.items():
        if name in by_name:
            setattr(cls, dunder, compile_template(templates[side], by_name[name], side, names))
    for op in by_name.values():
        side = "unary" if len(op.args) == 1 else "left"
        op.fast[cls] = _compiled_on_first_call(op, cls, templates[side], side, names)


def _compiled_on_first_call(op: Op, cls: type, template: str, side: str, names: dict[str, Any]) -> Any:
    """op's fast function for `cls`, compiled when first called (most of the registry's
    ops are never called on a float tracer in a given program: compiling them all would
    cost `import adkit` ~1 ms per op)."""

    def first_call(*args: Any) -> Any:
        fast = op.fast[cls] = compile_template(template, op, side, names)
        return fast(*args)

    return first_call
