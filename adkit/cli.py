"""The `adkit` command."""

from __future__ import annotations

import argparse
import fractions
import json
import math
import os
import re
import sys
import textwrap
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

EXAMPLES = """examples:
  adkit bench                                        time every engine on deep product-node graphs
  adkit compare "sin(x*y) + x" --at x=1 --at y=2     one formula through all five engines
  adkit trace "cos(w1*x + w0)" --at w0=0.5 --at w1=2 --at x=3   lecture-style evaluation traces
  adkit paths "cos(w**2) + sin(w**2)" --at w=1.5 --top 3        the pathwise aggregation lemma
  adkit check mymodule:loss --shape 3,4               check a gradient (exit 1 if it is wrong)
  adkit demo                                         the lecture examples, forward and reverse
"""


def _demo(args: argparse.Namespace) -> int:
    import adkit as ad

    rows = []

    def colah(a, b):
        return (a + b) * (b + 1.0)

    def two_paths(w):
        return np.cos(w**2) + np.sin(w**2)

    def rabbany(w0, w1, x):
        return np.cos(w1 * x + w0)

    cases = [
        ("colah: e = (a+b)(b+1) at a=2, b=1", colah, (2.0, 1.0), (0, 1)),
        ("two paths: cos(w^2) + sin(w^2) at w=1.5", two_paths, (1.5,), (0,)),
        ("Rabbany: y2 = cos(w1 x + w0) at (0.5, 2, 3)", rabbany, (0.5, 2.0, 3.0), (0, 1, 2)),
    ]
    print("adkit demo: lecture examples, forward and reverse mode\n")
    for title, f, point, nums in cases:
        print(title)
        for engine in ("forward", "reverse"):
            start = time.perf_counter()
            g = ad.grad(f, argnums=nums, engine=engine)(*point)
            seconds = time.perf_counter() - start
            rows.append((title, engine, g))
            print(f"  {engine:8s} gradient = {tuple(round(float(v), 12) for v in g)}   ({seconds * 1e6:.0f} µs)")
        print()
    return 0


# --- formula commands: compare, trace, paths ------------------------------------------------
# A formula from the command line is checked by adkit.formula's whitelist (never eval'd);
# `--at name=number` gives the point. Data goes to stdout (a table, or JSON with --json),
# messages and warnings to stderr. Exit codes: 0 success, 1 a refused or failed
# computation (an internal error too, with a one-line message), 2 bad usage.


class UsageError(Exception):
    """Bad usage found after argument parsing (a bad --at value, an unknown engine): exit 2."""


FORMULA_HELP = """formulas:
  numbers, variable names, + - * / ** (power), unary minus, and calls of adkit's scalar
  functions: {functions}.
  Keyword parameters as numbers: leaky_relu(x, alpha=0.2), clip(x, lo=-1, hi=1).
  Nothing else (no attributes, strings, comparisons, ...): the formula is checked by a
  whitelist, never evaluated as Python. A formula that starts with '-' must start with a
  space (' -x*y') or come after the options and '--'.

--at NAME=NUMBER:
  one for every variable (or several in one: --at x=1,y=2); numbers like 2, -0.5, 1e-3,
  or fractions like 1/3 (ints and fractions make the symbolic reference exact).

exit codes: 0 success, 1 refused or failed computation, 2 bad usage
"""

_NUMBER_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_INT_RE = re.compile(r"[+-]?\d+\Z")
_FRACTION_RE = re.compile(r"([+-]?\d+)\s*/\s*(\d+)\Z")


def _formula_epilog(examples: str) -> str:
    from adkit.formula import functions

    names = ", ".join(sorted(functions()))
    return (
        "examples:\n" + examples + "\n" + FORMULA_HELP.format(functions=textwrap.fill(names, 76).replace("\n", "\n  "))
    )


def _parse_number(name: str, text: str) -> int | float | fractions.Fraction:
    text = text.strip()
    value: int | float | fractions.Fraction
    if len(text) > 400:
        raise UsageError(f"--at {name}=...: the number has {len(text)} characters; write it shorter (like 1e300)")
    try:
        if _INT_RE.match(text):
            value = int(text)
        elif _FRACTION_RE.match(text):
            num, den = _FRACTION_RE.match(text).groups()  # type: ignore[union-attr]
            if int(den) == 0:
                raise UsageError(f"--at {name}={text}: division by zero")
            value = fractions.Fraction(int(num), int(den))
        elif _NUMBER_RE.match(text):
            value = float(text)
        else:
            raise UsageError(f"--at {name}={text}: not a number (write it like 2, -0.5, 1e-3 or 1/3)")
        as_float = float(value)
    except OverflowError:
        raise UsageError(f"--at {name}={text}: too large for a float") from None
    if not math.isfinite(as_float):
        raise UsageError(f"--at {name}={text}: too large for a float (the largest is about 1.8e308)")
    return value


def _parse_point(formula: Any, at: Sequence[str] | None) -> dict[str, int | float | fractions.Fraction]:
    """The --at values by variable name; every variable exactly once, nothing else."""
    point: dict[str, int | float | fractions.Fraction] = {}
    variables = formula.variables
    for item in at or []:
        for part in item.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise UsageError(f"--at {part.strip()}: expected NAME=NUMBER, like --at x=1.5")
            name, _, number = part.partition("=")
            name = name.strip()
            if name not in variables:
                known = ", ".join(variables) if variables else "none"
                raise UsageError(f"--at {name}=...: the formula has no variable {name!r} (its variables: {known})")
            if name in point:
                raise UsageError(f"--at {name}=... is given more than once")
            point[name] = _parse_number(name, number)
    if not variables:
        raise UsageError("the formula has no variables: there is nothing to differentiate")
    missing = [v for v in variables if v not in point]
    if missing:
        raise UsageError(f"no value for {', '.join(missing)}: add " + " ".join(f"--at {m}=NUMBER" for m in missing))
    formula.set_order(list(point))  # inputs in the order the --at values were given (a1 = first)
    return dict(point)


def _prepare(args: argparse.Namespace) -> tuple[Any, dict[str, Any], list[Any]]:
    """The checked formula, the point as given, and the values the engines get.

    Engines other than the symbolic one take floats and ints but not fractions, so a
    fraction is passed to them as its float (the exact value is kept for the reference).
    """
    from adkit.formula import parse

    formula = parse(args.expr)
    point = _parse_point(formula, args.at)
    values = [float(v) if isinstance(v, fractions.Fraction) else v for v in point.values()]
    return formula, point, values


def _point_text(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def _json_safe(obj: Any) -> Any:
    """Plain JSON: non-finite floats as the strings "inf", "-inf", "nan"; numpy scalars as numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)) or obj is None or isinstance(obj, str):
        return bool(obj) if isinstance(obj, np.bool_) else obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, fractions.Fraction):
        return str(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return str(obj)


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(_json_safe(data), indent=2, allow_nan=False))


def _float(v: Any) -> float:
    from adkit.ops.core import primal

    return float(np.asarray(primal(v), dtype=float))


def _soft_grad(command: str, formula: Any, values: Sequence[Any]) -> list[float] | None:
    """The reverse-mode gradient as a side column: on failure a warning and None."""
    import adkit as ad
    from adkit.errors import AdkitError

    try:
        g = ad.grad(formula, argnums=tuple(range(len(values))), engine="reverse")(*values)
    except (AdkitError, ArithmeticError, ValueError) as exc:
        print(f"adkit {command}: warning: reverse mode: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    return [_float(v) for v in g]


def _num_text(v: float | None) -> str:
    return "—" if v is None else f"{v:.10g}"


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor
        pass


def _guarded(command: str) -> Any:
    """Run a command: usage errors exit 2, refused computations and internal errors 1,
    always with a one-line message on stderr, never a traceback. Warnings are collected
    and printed once each on stderr."""

    def wrap(run: Any) -> Any:
        def guarded(args: argparse.Namespace) -> int:
            from adkit.engines.paths import PathBudgetExceeded
            from adkit.errors import AdkitError
            from adkit.formula import FormulaError

            prefix = f"adkit {command}"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    code = run(args)
                    sys.stdout.flush()
                except BrokenPipeError:  # `adkit trace ... | head`: the reader left
                    _silence_stdout()
                    return 1
                except (FormulaError, UsageError) as exc:
                    print(f"{prefix}: error: {exc}", file=sys.stderr)
                    code = 2
                except PathBudgetExceeded as exc:
                    print(f"{prefix}: refused: {exc} (on the command line: --budget N)", file=sys.stderr)
                    code = 1
                except AdkitError as exc:  # refused: not differentiable here, ...
                    print(f"{prefix}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
                    code = 1
                except KeyboardInterrupt:
                    print(f"{prefix}: interrupted", file=sys.stderr)
                    code = 130
                except Exception as exc:  # noqa: BLE001 (a message, never a traceback)
                    print(f"{prefix}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
                    code = 1
            seen = set()
            for w in caught:
                text = f"{w.category.__name__}: {w.message}"
                if text not in seen:
                    seen.add(text)
                    print(f"{prefix}: warning: {text}", file=sys.stderr)
            return code

        guarded.__name__ = run.__name__
        guarded.__doc__ = run.__doc__
        return guarded

    return wrap


def _engine_list(text: str | None) -> tuple[str, ...]:
    from adkit.transforms import ENGINES

    if text is None:
        return tuple(ENGINES)
    names = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in names if e not in ENGINES]
    if unknown or not names:
        raise UsageError(
            f"--engines {text}: unknown engine(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(ENGINES)}"
        )
    return tuple(dict.fromkeys(names))


@_guarded("compare")
def _compare(args: argparse.Namespace) -> int:
    """Every engine's gradient at the point, side by side, against a symbolic reference."""
    import adkit as ad

    formula, point, values = _prepare(args)
    engines = _engine_list(args.engines)
    exact = list(point.values()) if any(isinstance(v, fractions.Fraction) for v in point.values()) else None
    result = ad.compare(formula, *values, engines=engines, time_budget=args.time_budget, reference_args=exact)
    ok = [r for r in result.rows if r.error is None]
    if args.json:
        _print_json({"formula": formula.text, "variables": list(formula.variables), "point": point, **result.to_dict()})
    else:
        print(f"f({', '.join(formula.variables)}) = {formula.text}   at {_point_text(point)}")
        print(result)
    if not ok:
        print("adkit compare: every engine failed (see the table)", file=sys.stderr)
        return 1
    return 0


@_guarded("trace")
def _trace(args: argparse.Namespace) -> int:
    """Evaluation, tangent and adjoint traces as tables, like the lecture slides."""
    import adkit as ad

    formula, point, values = _prepare(args)
    seed = args.seed if args.seed is not None else formula.variables[0]
    if seed not in formula.variables:
        raise UsageError(
            f"--seed {seed}: not a variable of the formula (its variables: {', '.join(formula.variables)})"
        )
    graph = ad.trace(formula, *values, names=list(formula.variables))
    evaluation = graph.evaluation_trace()
    tangent = graph.tangent_trace(seed)
    adjoint = graph.adjoint_trace()
    gradient = _soft_grad("trace", formula, values)
    if args.dot:
        try:
            with open(args.dot, "w", encoding="utf-8") as fh:
                fh.write(graph.to_dot() + "\n")
        except OSError as exc:
            print(f"adkit trace: cannot write the DOT file: {exc}", file=sys.stderr)
            return 1
        print(
            f"adkit trace: wrote the graph to {args.dot} (render it with: dot -Tpng {args.dot} -o graph.png)",
            file=sys.stderr,
        )
    value = graph.value
    code = _adjoint_program(formula, values) if args.code else None
    if args.json:
        _print_json(
            {
                **({"code": code} if code is not None else {}),
                "formula": formula.text,
                "variables": list(formula.variables),
                "point": point,
                "value": _float(value) if value is not None else None,
                "gradient": None if gradient is None else dict(zip(formula.variables, gradient)),
                "seed": seed,
                "evaluation": evaluation.to_dict(),
                "tangent": tangent.to_dict(),
                "adjoint": adjoint.to_dict(),
                "dot": args.dot,
            }
        )
        return 0
    print(f"f({', '.join(formula.variables)}) = {formula.text}   at {_point_text(point)}")
    shown = ", ".join(f"df/d{v} = {g:.10g}" for v, g in zip(formula.variables, gradient)) if gradient else "—"
    print(f"f = {_float(value):.10g}   gradient (reverse mode): {shown}")
    if code is not None:
        print()
        print(evaluation)
        print()
        print("The adjoint program (adkit.jit(adkit.grad(f)).source: the forward sweep, then the adjoints)")
        print(code.rstrip())
        return 0
    for table in (evaluation, tangent, adjoint):
        print()
        print(table)
    return 0


def _adjoint_program(formula: Any, values: Sequence[Any]) -> str:
    """The source jit generates for the formula's gradient, with the formula's variable names."""
    import inspect

    import adkit as ad

    def f(*xs: Any) -> Any:
        return formula(*xs)

    f.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in formula.variables]
    )
    nums = tuple(range(len(values)))
    return ad.jit(ad.grad(f, argnums=nums)).source(*[float(v) for v in values])


@_guarded("paths")
def _paths(args: argparse.Namespace) -> int:
    """Path counts, the gradient as a sum over paths, and the heaviest paths."""
    import adkit as ad

    formula, point, values = _prepare(args)
    names = list(formula.variables)
    graph = ad.trace(formula, *values, names=names)
    counts = {v: graph.count_paths(v) for v in names}
    nums = tuple(range(len(values)))
    with ad.paths_budget(args.budget):
        by_paths = ad.grad(formula, argnums=nums, engine="paths")(*values)
    by_paths = [_float(g) for g in by_paths]
    if not all(math.isfinite(g) for g in by_paths):
        print("adkit paths: warning: the gradient is not finite at this point", file=sys.stderr)
    reverse = _soft_grad("paths", formula, values)
    heaviest = ad.heaviest_paths(graph, args.top) if args.top else []

    def step(node_id: int) -> str:
        node = graph.nodes[node_id]
        return node.label if node.op is None else f"{node.name} ({node.label})"

    paths = [{"nodes": [step(i) for i in p.nodes], "product": p.product} for p in heaviest]
    if args.json:
        _print_json(
            {
                "formula": formula.text,
                "variables": names,
                "point": point,
                "value": _float(graph.value) if graph.value is not None else None,
                "paths": counts,
                "total_paths": sum(counts.values()),
                "gradient": dict(zip(names, by_paths)),
                "reverse_gradient": None if reverse is None else dict(zip(names, reverse)),
                "heaviest": paths,
                "budget": args.budget,
            }
        )
        return 0
    from adkit.display import text_table

    print(f"f({', '.join(names)}) = {formula.text}   at {_point_text(point)}")
    print(f"f = {_float(graph.value):.10g}   {sum(counts.values()):,} paths from the inputs to the output\n")
    rows = [
        [v, f"{counts[v]:,}", _num_text(g), _num_text(None if reverse is None else reverse[k])]
        for k, (v, g) in enumerate(zip(names, by_paths))
    ]
    print("gradient as the sum over paths of the products of local derivatives")
    print(text_table(["input", "paths", "df/dinput (paths)", "reverse mode"], rows))
    if paths:
        print(f"\nthe {len(paths)} heaviest path(s), by |product of local derivatives|")
        print(
            text_table(
                ["rank", "path", "product"],
                [[str(k + 1), " -> ".join(p["nodes"]), f"{p['product']:.6g}"] for k, p in enumerate(paths)],
            )
        )
    return 0


def _positive_int(text: str) -> int:
    try:
        value = float(text.replace("_", "")) if any(c in text for c in ".eE") else int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(value)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds, like 10 or 0.5") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive, finite number of seconds")
    return value


def _top_k(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number from 0 to 10000")
    return value


def _add_formula_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expr", metavar="EXPR", help="the formula, e.g. 'sin(x*y) + x' (quote it for the shell)")
    p.add_argument(
        "--at",
        action="append",
        metavar="NAME=NUMBER",
        help="the value of one variable (repeat for each, or x=1,y=2); fractions like 1/3 are exact",
    )
    p.add_argument("--json", action="store_true", help="print JSON on stdout instead of tables")


def add_formula_parsers(sub: Any) -> None:
    """Register `adkit compare`, `adkit trace` and `adkit paths`."""
    fmt = argparse.RawDescriptionHelpFormatter
    compare = sub.add_parser(
        "compare",
        help="a formula's gradient by every engine, side by side",
        description="Differentiate a formula at a point with every engine (forward, reverse, symbolic, "
        "numeric, paths): gradient, error against a symbolic reference, time.",
        epilog=_formula_epilog(
            "  adkit compare 'sin(x*y) + x' --at x=1 --at y=2\n"
            "  adkit compare 'x**2 * y' --at x=1/3 --at y=2 --engines forward,reverse\n"
            "  adkit compare 'tanh(w*x + b)' --at w=0.5,x=2,b=-1 --json\n"
        ),
        formatter_class=fmt,
    )
    _add_formula_arguments(compare)
    compare.add_argument("--engines", metavar="LIST", help="comma-separated engines (default: all five)")
    compare.add_argument(
        "--time-budget",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="time budget per engine and for the reference (default 10); past it the row says so",
    )
    compare.set_defaults(run=_compare)

    trace = sub.add_parser(
        "trace",
        help="evaluation, tangent and adjoint traces of a formula, as tables",
        description="The forward evaluation trace (a1 = x, a3 = a1 * a2, ...), the forward-mode tangent "
        "trace for one seeded input and the reverse-mode adjoint trace, with the numbers, as on lecture slides.",
        epilog=_formula_epilog(
            "  adkit trace 'cos(w1*x + w0)' --at w0=0.5 --at w1=2 --at x=3\n"
            "  adkit trace '(a + b) * (b + 1)' --at a=2,b=1 --seed b --dot graph.dot\n"
            "  adkit trace 'sin(x*y)' --at x=1,y=2 --json\n"
            "  adkit trace --code 'sin(w1*x + w0)' --at w1=2 --at x=3 --at w0=1\n"
        ),
        formatter_class=fmt,
    )
    _add_formula_arguments(trace)
    trace.add_argument("--seed", metavar="NAME", help="the input seeded in the tangent trace (default: the first)")
    trace.add_argument("--dot", metavar="FILE", help="also write the graph as Graphviz DOT to FILE")
    trace.add_argument(
        "--code",
        action="store_true",
        help="print the evaluation trace and the adjoint program adkit.jit generates (v1 = ..., then v3_bar = ...)",
    )
    trace.set_defaults(run=_trace)

    paths = sub.add_parser(
        "paths",
        help="a formula's gradient as a sum over paths, and its heaviest paths",
        description="Count the paths from each input to the output (dynamic programming), add up the "
        "products of local derivatives along every path (enumeration, refused over the budget), and "
        "list the K paths with the largest |product|.",
        epilog=_formula_epilog(
            "  adkit paths 'cos(w**2) + sin(w**2)' --at w=1.5\n"
            "  adkit paths '(a + b) * (b + 1)' --at a=2,b=1 --top 3 --json\n"
            "  adkit paths 'x*x*x*x' --at x=2 --budget 10\n"
        ),
        formatter_class=fmt,
    )
    _add_formula_arguments(paths)
    paths.add_argument("--top", type=_top_k, default=5, metavar="K", help="show the K heaviest paths (default 5)")
    paths.add_argument(
        "--budget",
        type=_positive_int,
        default=1_000_000,
        metavar="N",
        help="enumerate at most N paths (default 1000000); more is refused with exit code 1",
    )
    paths.set_defaults(run=_paths)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adkit",
        description="The same derivatives computed five ways, side by side.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="differentiate the lecture examples with forward and reverse mode",
        epilog="example:\n  adkit demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.set_defaults(run=_demo)
    from adkit import bench

    bench.add_parser(sub)
    add_formula_parsers(sub)
    from adkit.check import command as check_command

    check_command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    return args.run(args)
