"""`adkit check MODULE:FUNC ...`: check a gradient from the command line.

Imports the user's module (from the current directory, then sys.path; or a path to a
.py file), builds the point (a seeded random array of --shape, or --at FILE.npy / .npz),
runs adkit.check_grad and prints the report (JSON on stdout with --json).

Exit codes: 0 the check PASSED, 1 it FAILED or was INCONCLUSIVE (the report says why: an
inconclusive check must not look like a pass to a script), 2 the check could not be run
(bad usage: module or function not found, a bad shape, an unreadable file, or f / grad
raised) — with a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import warnings
from typing import Any, NoReturn

from adkit.check.checker import MODES
from adkit.engines.numeric import METHODS

EPILOG = """examples:
  adkit check mymodel:loss --shape 5                       grad by adkit's reverse engine
  adkit check mymodel:loss --grad mymodel:loss_grad --shape 3,4
  adkit check mymodel:loss --grad mymodel:loss_grad --at params.npz --json
  adkit check path/to/model.py:loss --shape 1000,100 --sample 20 --seed 3
  adkit check mymodel:loss --grad mymodel:loss_grad --shape 200000 --mode projection
  adkit check mymodel:loss --grad mymodel:loss_grad --shape 50 --dtype float32 --fd-dtype float64
  adkit check mymodel:loss --grad mymodel:loss_grad --shape 5 --method richardson

FUNC is called with one argument, the point: an array (--shape, --at FILE.npy) or a dict
of arrays (--at FILE.npz, one entry per array); --grad FUNC must return the gradient in
the same structure. MODULE is imported from the current directory (then sys.path), or
given as a path to a .py file.

exit codes: 0 the check PASSED, 1 it FAILED or was INCONCLUSIVE (f mutates its argument,
f is too noisy, finite differences cannot decide: the report says why), 2 the check could
not be run (module or function not found, bad shape, unreadable file, f or grad raised)
"""


class CheckUsageError(Exception):
    """The check cannot be run as asked: exit 2 with this one-line message."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "check",
        help="check a gradient (yours, or adkit's) of a Python function against finite differences",
        description="Check the gradient of FUNC at a point against finite differences and print the report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="MODULE:FUNC", help="the function to check, e.g. mymodel:loss")
    p.add_argument(
        "--grad",
        metavar="MODULE:FUNC",
        help="the claimed gradient (default: adkit's reverse engine differentiates FUNC)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--shape", metavar="N[,M...]", help="check at a seeded random normal point of this shape")
    where.add_argument(
        "--at", metavar="FILE", help="check at the array in FILE.npy (or the dict of arrays in FILE.npz)"
    )
    p.add_argument(
        "--seed", type=_int_arg, default=0, help="seed of the point, the sample and the directions (default 0)"
    )
    p.add_argument("--sample", type=_positive_int_arg, default=None, help="check N random entries per parameter")
    p.add_argument(
        "--method",
        default="central",
        choices=METHODS,
        help="finite differences: central (default), forward, backward, richardson (extrapolated), "
        "complex (complex step: f must be analytic)",
    )
    p.add_argument(
        "--mode",
        default="entries",
        choices=MODES,
        help="entries (default: every entry, or --sample N of them) or projection (random directions, "
        "bisecting to the wrong entries)",
    )
    p.add_argument(
        "--fd-dtype",
        default=None,
        choices=("float64", "float32"),
        help="evaluate the finite differences with the point cast to this dtype "
        "(e.g. float64 for a float32 point, when f accepts it)",
    )
    p.add_argument("--threshold", type=_float_arg, default=None, help="on rho (default: 1e-6 for float64)")
    p.add_argument(
        "--dtype", default="float64", choices=("float64", "float32", "float16"), help="dtype of a --shape point"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(run=run)

    def error(message: str) -> NoReturn:  # one line, not argparse's usage block
        print(f"adkit check: error: {message} (see adkit check --help)", file=sys.stderr)
        sys.exit(2)

    p.error = error  # type: ignore[method-assign]
    return p


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive_int_arg(text: str) -> int:
    n = _int_arg(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _float_arg(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return x


def parse_shape(text: str) -> tuple[int, ...]:
    """'5' -> (5,), '3,4' -> (3, 4); '()' or 'scalar' -> () (a Python float)."""
    t = text.strip().strip("()[]").replace(" ", "")
    if t in ("", "scalar"):
        return ()
    parts = [s for s in t.split(",") if s != ""]
    try:
        shape = tuple(int(s) for s in parts)
    except ValueError:
        raise CheckUsageError(
            f"--shape {text!r}: expected positive integers separated by commas, like 5 or 3,4"
        ) from None
    if not shape or any(n < 1 for n in shape):
        raise CheckUsageError(f"--shape {text!r}: every dimension must be a positive integer")
    if len(shape) > 32:
        raise CheckUsageError(f"--shape {text!r}: too many dimensions")
    total = 1
    for n in shape:
        total *= n
    if total > 50_000_000:
        raise CheckUsageError(f"--shape {text!r}: {total} entries is too many for a command-line check")
    return shape


def load_function(spec: str, what: str) -> Any:
    """MODULE:FUNC (FUNC may be dotted: module:Class.method), MODULE a name or a .py path."""
    if ":" not in spec:
        raise CheckUsageError(f"{what} {spec!r}: expected MODULE:FUNC, like mymodel:loss")
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise CheckUsageError(f"{what} {spec!r}: expected MODULE:FUNC, like mymodel:loss")
    module = _import(module_name, what)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CheckUsageError(
                f"{what} {spec!r}: module {module.__name__!r} has no attribute {attr!r}"
                + (f" (it has: {_public(module)})" if _public(module) else "")
            ) from None
    if not callable(obj):
        raise CheckUsageError(f"{what} {spec!r}: {attr} is a {type(obj).__name__}, not a function")
    return obj


def _public(module: Any) -> str:
    names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
    own = [n for n in names if getattr(vars(module)[n], "__module__", None) == module.__name__]
    return ", ".join(sorted(own)[:12])


def _import(name: str, what: str) -> Any:
    try:
        if name.endswith(".py") or os.sep in name or "/" in name:
            if not os.path.isfile(name):
                raise CheckUsageError(f"{what}: no such file {name!r}")
            mod_name = os.path.splitext(os.path.basename(name))[0]
            spec = importlib.util.spec_from_file_location(mod_name, name)
            if spec is None or spec.loader is None:
                raise CheckUsageError(f"{what}: cannot import {name!r}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
            return module
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        return importlib.import_module(name)
    except CheckUsageError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name == name or (exc.name and name.startswith(exc.name + ".")):
            raise CheckUsageError(
                f"{what}: module {name!r} not found (looked in {os.getcwd()} and on sys.path)"
            ) from None
        raise CheckUsageError(f"{what}: importing {name!r} failed: {_one_line(exc)}") from None
    except SystemExit as exc:
        raise CheckUsageError(f"{what}: importing {name!r} called sys.exit({exc.code})") from None
    except BaseException as exc:  # noqa: BLE001 (the user's module: any error is a message)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise CheckUsageError(f"{what}: importing {name!r} raised {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_point(args: argparse.Namespace) -> tuple[Any, str]:
    import numpy as np

    if args.at is not None:
        path = args.at
        if not os.path.isfile(path):
            raise CheckUsageError(f"--at {path!r}: no such file")
        try:
            with open(path, "rb") as fh:
                data = np.load(fh, allow_pickle=False)
                if isinstance(data, np.lib.npyio.NpzFile):
                    point: Any = {k: np.array(data[k]) for k in data.files}
                    if not point:
                        raise CheckUsageError(f"--at {path!r}: the .npz file holds no arrays")
                else:
                    point = np.array(data)
        except CheckUsageError:
            raise
        except Exception as exc:  # noqa: BLE001 (unreadable, pickled objects, truncated ...)
            raise CheckUsageError(f"--at {path!r}: cannot read it as .npy / .npz ({_one_line(exc)})") from None
        leaves = list(point.values()) if isinstance(point, dict) else [point]
        for leaf in leaves:
            if leaf.dtype.kind not in "fiu":
                raise CheckUsageError(f"--at {path!r}: holds an array of dtype {leaf.dtype}; expected numbers")
        if isinstance(point, np.ndarray) and point.dtype.kind in "iu":
            point = point.astype(np.float64)
        if isinstance(point, dict):
            point = {k: (v.astype(np.float64) if v.dtype.kind in "iu" else v) for k, v in point.items()}
        described = f"the point in {path}"
        return point, described
    if args.shape is None:
        raise CheckUsageError("give the point: --shape N[,M...] (a seeded random point) or --at FILE.npy")
    shape = parse_shape(args.shape)
    rng = np.random.default_rng(args.seed)
    if shape == ():
        return float(rng.standard_normal()), f"a random normal scalar (seed {args.seed})"
    return rng.standard_normal(shape).astype(
        args.dtype
    ), f"a random normal {args.dtype} point of shape {shape} (seed {args.seed})"


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except CheckUsageError as exc:
        print(f"adkit check: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("adkit check: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    f = load_function(args.target, "MODULE:FUNC")
    grad = load_function(args.grad, "--grad") if args.grad else None
    point, described = load_point(args)
    from adkit.check import check_grad

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            report = check_grad(
                _guard(f, args.target),
                point,
                _guard(grad, args.grad) if grad is not None else None,
                sample=args.sample,
                seed=args.seed,
                method=args.method,
                mode=args.mode,
                threshold=args.threshold,
                fd_dtype=args.fd_dtype,
            )
        except _UserCodeError as exc:
            raise CheckUsageError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 (no traceback: a one-line message, exit 2)
            raise CheckUsageError(f"cannot check {args.target} at {described}: {_one_line(exc)}") from None
    seen = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if text not in seen:
            seen.add(text)
            print(f"adkit check: warning: {text}", file=sys.stderr)
    code = 0 if report.verdict == "PASSED" else 1
    try:
        if args.json:
            data = report.to_dict()
            data["target"] = args.target
            data["grad"] = args.grad
            data["point"] = described
            print(json.dumps(data, indent=2))
        else:
            print(f"adkit check {args.target} at {described}")
            print(report)
        sys.stdout.flush()
    except BrokenPipeError:  # `adkit check ... | head`: the reader left; the verdict stands
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    return code


class _UserCodeError(Exception):
    pass


def _guard(fn: Any, spec: str) -> Any:
    """fn, with any exception it raises turned into one message naming it."""

    def call(*a: Any, **k: Any) -> Any:
        try:
            return fn(*a, **k)
        except Exception as exc:  # noqa: BLE001
            raise _UserCodeError(f"{spec} raised {_one_line(exc)}") from None

    call.__name__ = getattr(fn, "__name__", "f")
    call.__qualname__ = getattr(fn, "__qualname__", call.__name__)
    call.__module__ = getattr(fn, "__module__", None)
    return call
