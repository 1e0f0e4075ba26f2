"""Exceptions adkit raises: each names the problem and the fix."""

import re


class AdkitError(Exception):
    """Base class of every error adkit raises on purpose."""


class UnsupportedFunctionError(AdkitError, TypeError):
    """A numpy function (or ufunc method) has no entry in the op registry."""


class NonFiniteDerivativeError(AdkitError, FloatingPointError):
    """A derivative came out inf or NaN; the message names the op and the point."""


class LeakedTracerError(AdkitError, RuntimeError):
    """A traced value escaped the grad/jvp call that created it and was used later."""


class AdkitTypeError(AdkitError, TypeError):
    """A value of a kind adkit cannot differentiate: a bool, a string, a complex number,
    a masked array, a function's output that is not a number, ..."""


class AdkitValueError(AdkitError, ValueError):
    """An argument whose value adkit cannot use: an unknown engine, argnums out of range,
    an infinite budget, a tangent of the wrong shape, ..."""


class TracerConversionError(AdkitTypeError):
    """A traced value was turned into a plain Python or numpy value (float(x), int(x),
    round(x), np.array(x), x used as an index), which would drop its derivative."""


class InPlaceUpdateError(AdkitTypeError, ValueError):
    """An in-place write that would lose a derivative: x[i] = v into a traced array, or a
    traced value stored into a plain numpy array (a[i] = x). A ValueError too, because
    that is what numpy itself raises for the second case."""


class NestedEngineError(AdkitTypeError):
    """An engine that runs f on plain numbers (symbolic, numeric, paths) was called on
    values traced by an enclosing derivative call, so the outer derivative would be lost."""


_OBJECT_LOOP = re.compile(
    r"loop of ufunc does not support argument \d+ of type (\w+) which has no callable (\w+) method"
)


class _TranslateNumpyRefusals:
    """Context manager: numpy's own ValueError "setting an array element with a sequence",
    raised because a traced value refused to become a float (a[i] = x into a plain numpy
    array), re-raised as an InPlaceUpdateError that says what happened and what to do; and
    numpy's TypeError from a math ufunc on an object array mixing traced values and plain
    numbers (np.exp(np.array([x, 1.0]))), re-raised with the fix (np.stack).
    A class, not a generator: it runs around every derivative call."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        if kind is TypeError and exc is not None:
            found = _OBJECT_LOOP.search(str(exc))
            if found is not None:
                kind_name, method = found.groups()
                raise AdkitTypeError(
                    f"np.{method} met an object array that mixes traced values with plain numbers (a "
                    f"{kind_name} among them), as np.array([x, 1.0]) builds: numpy then calls .{method}() "
                    "on each entry, and a plain number has no such method. Build the array with "
                    "np.stack([x, 1.0]) (or np.hstack / np.concatenate), which makes it one traced array."
                ).with_traceback(exc.__traceback__) from exc
        if exc is not None and kind is ValueError and isinstance(exc.__cause__, TracerConversionError):
            raise InPlaceUpdateError(
                "a traced value was stored into a plain numpy array (a[i] = x, or a[:] = ...): numpy "
                "arrays hold plain numbers only, so x's derivative would be lost. Build the array from "
                "traced values instead: np.stack([...]) / np.concatenate, or np.where(mask, x, a) to "
                "replace entries."
            ).with_traceback(exc.__traceback__) from exc
        return False


translate_numpy_refusals = _TranslateNumpyRefusals()


class UndefinedDerivativeError(AdkitError, ValueError):
    """The derivative asked for does not exist at this point: eigenvectors at a repeated
    eigenvalue, singular vectors at a repeated singular value (their directions are not
    unique there), a rank-deficient pseudo-inverse. The message names the op and the fix."""


class ExpressionTooDeepError(AdkitError, RuntimeError):
    """f's graph is too deep to be one sympy expression (sympy recurses once per level)."""


class JitCacheError(AdkitError, RuntimeError):
    """adkit.jit recorded its maximum number of programs for one input signature (fn keeps
    taking new paths through branches on traced values)."""
