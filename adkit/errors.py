"""Exceptions adkit raises: each names the problem and the fix."""


class AdkitError(Exception):
    """Base class of every error adkit raises on purpose."""


class UnsupportedFunctionError(AdkitError, TypeError):
    """A numpy function (or ufunc method) has no entry in the op registry."""


class NonFiniteDerivativeError(AdkitError, FloatingPointError):
    """A derivative came out inf or NaN; the message names the op and the point."""


class LeakedTracerError(AdkitError, RuntimeError):
    """A traced value escaped the grad/jvp call that created it and was used later."""


class ExpressionTooDeepError(AdkitError, RuntimeError):
    """f's graph is too deep to be one sympy expression (sympy recurses once per level)."""
