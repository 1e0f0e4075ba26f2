"""From a recording (adkit.jit.trace) to Python source, compiled once with `compile()`.

The program is straight-line: one assignment per live instruction (dead ones are
dropped), the guards where they were met, and a final finiteness check of the outputs.
A scalar instruction is the op's own Python-float expression (the registry's `scalar`,
e.g. `math.sin(x)`) with its arguments substituted, so a scalar program is plain float
arithmetic; any other is a call of the op's numpy implementation with literal keyword
parameters. Constants that are not plain non-negative numbers live in the program's
namespace (c1, c2, ...).
"""

from __future__ import annotations

import ast
import keyword
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from adkit.jit.trace import Guard, Instr, JitTrace
from adkit.ops.core import Op, all_finite, scalar_namespace

MISS = object()  # a guard failed: record this call again
NONFINITE = object()  # a value or derivative is inf or NaN: the eager engines decide


@dataclass
class Program:
    """A compiled recording: `run(*inputs)` -> list of outputs, MISS or NONFINITE."""

    run: Any
    source: str
    uses_numpy: bool


_TEMPLATES: dict[Op, str] = {}  # by op object: a re-registered name is a new op


def _template(op: Op) -> str:
    """The op's scalar expression as a format string: `{0}`, `{1}`, ... for its arguments,
    then its parameters (names found by the parser, so `math.x` is never taken for `x`)."""
    cached = _TEMPLATES.get(op)
    if cached is None:
        names = tuple(op.args) + tuple(op.params)
        marks = {n: f"__adkit_arg{k}__" for k, n in enumerate(names)}
        tree = ast.parse(op.scalar, mode="eval").body
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in marks:
                node.id = marks[node.id]
        text = ast.unparse(tree).replace("{", "{{").replace("}", "}}")
        for k in range(len(names)):
            text = text.replace(f"__adkit_arg{k}__", f"{{{k}}}")
        cached = _TEMPLATES[op] = text
    return cached


def _simple_literal(v: Any) -> bool:
    """A value whose repr is a plain literal that reads back exactly (and needs no parentheses)."""
    t = type(v)
    if t is float:
        return math.isfinite(v) and math.copysign(1.0, v) > 0
    if t is int:
        return v >= 0
    if t is bool or v is None or t is str:
        return True
    if t is tuple:
        return all(_simple_literal(x) or (type(x) in (int, float) and math.isfinite(x)) for x in v)
    return False


class _Emitter:
    def __init__(self, trace: JitTrace, names: dict[int, str]) -> None:
        self.trace = trace
        self.names = names
        self.namespace: dict[str, Any] = scalar_namespace()
        self.namespace.update(nan=math.nan, _MISS=MISS, _NONFINITE=NONFINITE, _allfinite=_allfinite)
        self.consts: dict[int, str] = {}
        self.uses_numpy = False
        self.inline: dict[int, str] = {}  # value -> its expression, for values used once (see _inline_plan)

    def name(self, ref: int) -> str:
        return self.names.get(ref) or f"v{ref}"

    def const(self, value: Any) -> str:
        if _simple_literal(value):
            return repr(value)
        key = id(value)
        if key not in self.consts:
            cname = f"c{len(self.consts) + 1}"
            self.consts[key] = cname
            self.namespace[cname] = value
        return self.consts[key]

    def operand(self, r: Any) -> str:
        if type(r) is not int:
            return self.const(r.value)
        text = self.inline.pop(r, None)
        return self.name(r) if text is None else f"({text})"

    def expression(self, ins: Instr) -> str:
        op = ins.op
        if ins.scalar:  # operands are identifiers, non-negative literals or parenthesised: atoms
            operands = [self.operand(r) for r in ins.inputs]
            if op.params:
                operands += [self.const(v) for v in op.params.values()]
            return _template(op).format(*operands)
        self.uses_numpy = True
        fname = f"f_{op.name}"
        self.namespace[fname] = op.impl
        args = [self.operand(r) for r in ins.inputs]
        args += [f"{k}={self.const(v)}" for k, v in ins.params.items()]
        return f"{fname}({', '.join(args)})"


def _allfinite(v: Any) -> bool:
    if type(v) is np.ndarray:
        return v.dtype.kind not in "fc" or all_finite(v)
    return bool(np.all(np.isfinite(v))) if isinstance(v, (np.generic, float)) else True


def _finite_test(emitter: _Emitter, ref: int) -> str:
    v = emitter.trace.variables[ref]._value
    n = emitter.name(ref)
    if type(v) in (float, np.float64):
        return f"{n} - {n} != 0.0"
    return f"not _allfinite({n})"


def emit(
    trace: JitTrace,
    inputs: list[int],
    outputs: list[Any],
    names: dict[int, str] | None = None,
    title: str = "program",
    aliases: dict[int, str] | None = None,
) -> Program:
    """Compile the recording into `title(*inputs)` (see the module docstring). `names`:
    variable names (default vN); `aliases`: names given to outputs (by position) at the end."""
    names = names or {}
    for k, alias in (aliases or {}).items():  # a temporary that is a gradient takes its name (x_bar)
        r = outputs[k]
        if names.get(r, "").startswith("t") and alias not in names.values():
            names[r] = alias
    em = _Emitter(trace, names)
    kept, uses = _live_steps(trace.steps, outputs)
    plan = None if names else _inline_plan(kept, uses)
    registers = None if plan is None else _Registers(em, kept, inputs, outputs, plan)
    lines = []
    finite_checked: set[int] = set()
    for idx, s in enumerate(kept):
        if isinstance(s, Instr):
            text = em.expression(s)
            if registers is None:
                lines.append(f"{em.name(s.out)} = {text}")
            elif s.out in plan.inlined:
                em.inline[s.out] = text
            else:
                lines.append(registers.assign(idx, s, text))
        elif s.kind == "finite":
            if s.var not in finite_checked:
                finite_checked.add(s.var)
                lines.append(f"if {_finite_test(em, s.var)}: return _NONFINITE")
        elif s.kind == "equal":
            lines.append(f"if {em.name(s.var)} != {em.const(s.value)}: return _MISS")
        else:
            lines.append(f"if {'not ' if s.kind == 'true' else ''}{em.name(s.var)}: return _MISS")
        if registers is not None and isinstance(s, Guard):
            registers.release(idx)
    out_refs = [r for r in outputs if type(r) is int and r not in finite_checked]
    if out_refs:
        lines.append(f"if {' or '.join(_finite_test(em, r) for r in dict.fromkeys(out_refs))}: return _NONFINITE")
    results = []
    for k, r in enumerate(outputs):
        if type(r) is int:
            alias = (aliases or {}).get(k)
            if alias and alias != em.name(r):
                lines.append(f"{alias} = {em.name(r)}")
                results.append(alias)
            elif isinstance(v := trace.variables[r]._value, np.ndarray) and (
                v.base is not None or not v.flags.writeable
            ):
                results.append(f"{em.name(r)}.copy()")  # a view (broadcast_to, reshape): the caller gets its own array
            else:
                results.append(em.name(r))
        else:
            c = em.const(r.value)
            results.append(f"{c}.copy()" if isinstance(r.value, np.ndarray) else c)
    lines.append(f"return [{', '.join(results)}]")
    params = ", ".join(registers.parameters if registers is not None else [em.name(r) for r in inputs])
    source = f"def {title}({params}):\n" + "".join(f"    {line}\n" for line in lines)
    namespace = em.namespace
    exec(compile(source, f"<adkit.jit {title}>", "exec"), namespace)  # noqa: S102 (generated from the registry)
    return Program(namespace[title], source, em.uses_numpy)


MAX_INLINE_DEPTH = 24  # nesting of inlined expressions (CPython's parser allows 200 parentheses)


@dataclass
class _InlinePlan:
    """Scalar values used exactly once, by a later scalar instruction, are written inside
    that instruction's expression instead of getting a line of their own: `inlined` are
    those values, `home[k]` the index of the line that computes kept[k] (k itself when it
    has a line). Python evaluates `(a * b) + c` as the two separate float operations, so
    the results are the same bit for bit; the program has fewer lines to compile and
    fewer local variables to store and load."""

    inlined: set[int]
    home: list[int]


def _live_steps(steps: list[Any], outputs: list[Any]) -> tuple[list[Any], dict[int, int]]:
    """The steps that matter: the guards, and the instructions whose value reaches an output
    or a guard (dead ones dropped); and how often each value is read (by those steps; an
    output or a guard counts twice, so that it keeps a name of its own)."""
    uses = {r: 2 for r in outputs if type(r) is int}
    kept = []
    for s in reversed(steps):
        if s.__class__ is Guard:
            uses[s.var] = uses.get(s.var, 0) + 2
        elif s.out in uses:
            for r in s.inputs:
                if r.__class__ is int:
                    uses[r] = uses.get(r, 0) + 1
        else:
            continue
        kept.append(s)
    kept.reverse()
    return kept, uses


def _inline_plan(kept: list[Any], uses: dict[int, int]) -> _InlinePlan:
    made_at: dict[int, int] = {}  # a scalar value -> the index of its instruction
    depth: dict[int, int] = {}  # a scalar value -> the nesting of its expression
    consumer = list(range(len(kept)))
    inlined: set[int] = set()
    for k, s in enumerate(kept):
        if s.__class__ is not Instr or not s.scalar:
            continue
        d = 0
        for r in s.inputs:
            if r.__class__ is int and uses[r] == 1 and r in made_at and depth[r] < MAX_INLINE_DEPTH:
                inlined.add(r)
                consumer[made_at[r]] = k
                d = max(d, depth[r] + 1)
        made_at[s.out] = k
        depth[s.out] = d
    home = consumer[:]
    for k in range(len(kept) - 1, -1, -1):
        home[k] = home[consumer[k]] if consumer[k] != k else k
    return _InlinePlan(inlined, home)


IN_PLACE_MIN_SIZE = 2048  # below this, numpy's out= argument costs more than a fresh allocation


class _Registers:
    """Variable names reused once their value is dead (fast programs; source() keeps one
    name per value): fewer locals for Python's compiler, and dead floats are freed at once.
    An elementwise numpy op whose input array dies at this instruction writes into that
    input (`out=`) when the shapes and dtypes agree and the array is the program's own (made
    by an elementwise op of the program, so no view of it and no caller's array can see it)."""

    def __init__(self, em: _Emitter, kept: list[Any], inputs: list[int], outputs: list[Any], plan: _InlinePlan) -> None:
        self.em = em
        variables = em.trace.variables
        self.free: list[str] = []
        self.count = 0
        end = len(kept)
        last: dict[int, int] = {}
        home, inlined = plan.home, plan.inlined
        arrays = []  # the numpy instructions, in program order
        for idx, s in enumerate(kept):
            at = home[idx]
            if s.__class__ is Instr:
                refs = s.inputs
                if not s.scalar:
                    arrays.append(s)
            else:
                refs = (s.var,)
            for r in refs:
                if r.__class__ is int and r not in inlined and last.get(r, -1) < at:
                    last[r] = at
        for r in outputs:
            if type(r) is int:
                last[r] = end
        self.last = last
        self.dies: dict[int, list[int]] = {}  # line -> the values read there for the last time
        for r, at in last.items():
            self.dies.setdefault(at, []).append(r)
        # the last use of each array's memory: a view (any non-elementwise op) keeps its input's alive
        self.values = {s.out: variables[s.out]._value for s in arrays}
        self.values.update((r, variables[r]._value) for s in arrays for r in s.inputs if type(r) is int)
        buffer_last = dict(last) if arrays else last
        self.fresh: set[int] = set()
        for s in reversed(arrays):
            if self._elementwise(s):
                self.fresh.add(s.out)
            else:
                for r in s.inputs:
                    if type(r) is int:
                        buffer_last[r] = max(buffer_last.get(r, -1), buffer_last.get(s.out, -1))
        self.buffer_last = buffer_last
        em.names = {}
        for r in inputs:
            em.names[r] = self._new()
        self.parameters = [em.names[r] for r in inputs]

    def _new(self) -> str:
        if self.free:
            return self.free.pop()
        self.count += 1
        return f"r{self.count}"

    def _elementwise(self, s: Instr) -> bool:
        impl = s.op.impl
        return (
            not s.scalar
            and not s.params
            and isinstance(impl, np.ufunc)
            and impl.nout == 1
            and type(self.values.get(s.out)) is np.ndarray
        )

    def release(self, idx: int, keep: Any = None) -> None:
        """The names of the values that die at line idx are free again (but `keep`'s)."""
        names = self.em.names
        for r in self.dies.get(idx, ()):
            if r != keep:
                self.free.append(names[r])

    def assign(self, idx: int, s: Instr, text: str) -> str:
        names = self.em.names
        into = None
        if self._elementwise(s) and self.values[s.out].size >= IN_PLACE_MIN_SIZE:
            out = self.values[s.out]
            for r in s.inputs:
                v = self.values.get(r) if type(r) is int else None
                if (
                    r in self.fresh
                    and self.last.get(r) == idx
                    and self.buffer_last.get(r) == idx
                    and type(v) is np.ndarray
                    and v.shape == out.shape
                    and v.dtype == out.dtype
                ):
                    into = r
                    break
        self.release(idx, keep=into)
        if into is not None:
            text = f"{text[:-1]}, out={names[into]})"
            names[s.out] = names[into]
        else:
            names[s.out] = self._new()
        return f"{names[s.out]} = {text}"


def identifier(name: str, taken: set[str]) -> str:
    """A safe variable name for a program input (no keyword, no clash with the namespace)."""
    base = name if name.isidentifier() and not keyword.iskeyword(name) else "arg"
    if base.startswith("f_"):  # the program's names for numpy implementations
        base = "_" + base
    candidate = base
    k = 1
    while candidate in taken or candidate in _RESERVED or (candidate[0] in "vctr" and candidate[1:].isdigit()):
        k += 1
        candidate = f"{base}_{k}"
    taken.add(candidate)
    return candidate


_RESERVED = set(scalar_namespace()) | {"nan", "_MISS", "_NONFINITE", "_allfinite"}
