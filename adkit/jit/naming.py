"""Lecture names for `jit(...).source()`: forward values v1, v2, ..., the adjoint of vK
as vK_bar, the gradient of input x as x_bar, other temporaries (local derivatives,
partial products) t1, t2, ...

While a source listing is recorded, the reverse engine's `process` and `Node.cotangents`
are wrapped to see which recorded value is the primal of which tape node, and which
value is that node's adjoint when the sweep reaches it. The wrappers are installed only
for `source()` and removed afterwards; the programs jit runs are recorded without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adkit.engines import reverse
from adkit.jit.trace import Instr, JitTrace, JitTracer


@contextmanager
def adjoint_names(trace: JitTrace, enabled: bool) -> Iterator[dict[int, str]]:
    """Yields {variable id: name}, filled in when the recording ends (if enabled)."""
    names: dict[int, str] = {}
    if not enabled:
        yield names
        return
    primal_of_node: dict[int, int] = {}
    defined: set[int] = set()
    adjoint_of: dict[int, int] = {}  # adjoint variable -> primal variable
    process, cotangents = reverse.ReverseTrace.process, reverse.Node.cotangents

    def named_process(self: Any, op: Any, args: Any, params: Any) -> Any:
        result = process(self, op, args, params)
        value = getattr(result, "value", None)
        if isinstance(value, JitTracer) and value._trace is trace and value.ref not in defined:
            defined.add(value.ref)  # not again for an op the jit simplified away (1.0 * v is v)
            primal_of_node[id(result.node)] = value.ref
        return result

    def named_cotangents(self: Any, g: Any) -> Any:
        ref = primal_of_node.get(id(self))
        if ref is not None and isinstance(g, JitTracer) and g._trace is trace and ref not in adjoint_of.values():
            adjoint_of.setdefault(g.ref, ref)
        return cotangents(self, g)

    reverse.ReverseTrace.process = named_process  # type: ignore[method-assign]
    reverse.Node.cotangents = named_cotangents  # type: ignore[method-assign]
    try:
        yield names
    finally:
        reverse.ReverseTrace.process = process  # type: ignore[method-assign]
        reverse.Node.cotangents = cotangents  # type: ignore[method-assign]
    forward = set(primal_of_node.values())
    n_v = n_t = 0
    for step in trace.steps:
        if not isinstance(step, Instr):
            continue
        if not forward or step.out in forward:
            n_v += 1
            names[step.out] = f"v{n_v}"
        else:
            n_t += 1
            names[step.out] = f"t{n_t}"
    for adj, ref in adjoint_of.items():
        if ref in names and adj not in forward and names.get(adj, "t").startswith("t"):
            names[adj] = f"{names[ref]}_bar"
