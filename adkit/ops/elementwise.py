"""Elementwise primitives: one line of rules each (HIPS autograd's numpy_vjps style).

`partials` are d out / d arg, written with registry ops over the argument names and
`out` (the op's value), like ChainRules' `@scalar_rule tanh(x) 1 - Ω^2`. Non-
differentiable points follow DESIGN.md: never NaN or an error; 0 at a local extremum
(abs, relu at 0); an even split on ties of maximum/minimum (what central differences
see); the lecture's closed interval for hard tanh.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from adkit.ops.core import REGISTRY, Op, is_complex, register


def piecewise(sp: Any, *pairs: tuple[Any, Any]) -> Any:
    """sympy's Piecewise((expr, cond), ...), for the kinked ops' sympy forms.

    When a condition contains another Piecewise (relu(relu(x) - y) has one in
    `relu(x) - y > 0`), sympy's constructor folds it and rewrites it through `as_set`,
    which for some conditions (arcsin and log1p inside a clip inside a minimum) recurses
    for minutes in sympy's periodicity(). The symbolic engine needs no such canonical
    form, so in that case the pairs are kept as written; otherwise (conditions that are
    plain, or known after a substitution) this is sympy's Piecewise. Derivatives,
    printing, lambdify and evalf are Piecewise's own either way."""
    return _piecewise_class(sp)(*pairs)


@functools.cache
def _piecewise_class(sp: Any) -> type:
    pair_type = sp.functions.elementary.piecewise.ExprCondPair

    class PiecewiseAsWritten(sp.Piecewise):
        def __new__(cls, *args: Any, **options: Any) -> Any:
            pairs = [tuple(getattr(a, "args", a)) for a in args]
            if not any(isinstance(c, sp.Basic) and c.has(sp.Piecewise) for _, c in pairs):
                return sp.Piecewise(*pairs, **options)
            built = [sp.Tuple.__new__(pair_type, sp.sympify(e), sp.sympify(c)) for e, c in pairs]
            return sp.Basic.__new__(cls, *built)

    return PiecewiseAsWritten


def sp_norm(sp: Any, entries: list[Any]) -> Any:
    """sqrt(sum of squares) as sympy, 0 where every entry is 0: so that its derivative
    there is the subgradient 0 (the kink policy of norm and hypot), not sympy's 0 / 0."""
    at_origin = sp.And(*[sp.Eq(e, 0) for e in entries])
    return piecewise(sp, (sp.Integer(0), at_origin), (sp.sqrt(sp.Add(*[e * e for e in entries])), True))


def uniform(lo: float, hi: float, avoid: tuple[float, ...] = (), gap: float = 0.1):
    """A domain sampler: uniform in [lo, hi], at least `gap` away from each kink."""

    def sample(rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
        x = rng.uniform(lo, hi, size=shape)
        for k in avoid:
            near = np.abs(x - k) < gap
            x = np.where(near, k + np.where(x >= k, gap, -gap) * 2, x)
        return float(x) if shape == () else x

    return sample


def domain(*samplers):
    """Combine one sampler per argument into a domain."""
    return lambda rng, shape: tuple(s(rng, shape) for s in samplers)


REAL = uniform(-2.0, 2.0)
POSITIVE = uniform(0.2, 3.0)
AWAY_FROM_ZERO = uniform(-2.0, 2.0, avoid=(0.0,))


def _ties_apart(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[Any, Any]:
    x = REAL(rng, shape)
    y = x + np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0) * rng.uniform(0.2, 1.0, size=shape)
    return x, (float(y) if shape == () else y)


def sigmoid_impl(x: Any) -> Any:
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    x = np.asarray(x)
    if np.iscomplexobj(x):  # complex-step: the analytic formula (logaddexp is real-only)
        return (1.0 / (1.0 + np.exp(-x)))[()]
    if not np.issubdtype(x.dtype, np.inexact):
        x = x.astype(float)
    return np.exp(-np.logaddexp(0.0, -x))[()]


def softplus_impl(x: Any) -> Any:
    """ln(1 + e^x) without overflow (np.logaddexp); the analytic formula for complex x."""
    if np.iscomplexobj(x):
        return np.log1p(np.exp(x))
    return np.logaddexp(0.0, x)


def _where3(c: Any, x: Any, y: Any) -> Any:
    return np.where(c, x, y)[()]


def sp_where(sp, c, x, y):
    return piecewise(sp, (x, c), (y, True))


# --- arithmetic -----------------------------------------------------------------
add = register(
    Op(
        "add",
        np.add,
        args=("x", "y"),
        scalar="x + y",
        partials=("1.0", "1.0"),
        sympy=lambda sp, x, y: x + y,
        domain=domain(REAL, REAL),
        linear=True,
        numpy_names=(np.add,),
        label="+",
    )
)
sub = register(
    Op(
        "sub",
        np.subtract,
        args=("x", "y"),
        scalar="x - y",
        partials=("1.0", "-1.0"),
        sympy=lambda sp, x, y: x - y,
        domain=domain(REAL, REAL),
        linear=True,
        numpy_names=(np.subtract,),
        label="-",
    )
)
mul = register(
    Op(
        "mul",
        np.multiply,
        args=("x", "y"),
        scalar="x * y",
        partials=("y", "x"),
        sympy=lambda sp, x, y: x * y,
        domain=domain(REAL, REAL),
        numpy_names=(np.multiply,),
        label="*",
    )
)
div = register(
    Op(
        "div",
        np.true_divide,
        args=("x", "y"),
        scalar="x / y",
        partials=("1.0 / y", "-out / y"),
        sympy=lambda sp, x, y: x / y,
        domain=domain(REAL, AWAY_FROM_ZERO),
        kinks="not defined at y = 0 (the value is inf or nan, as in numpy)",
        numpy_names=(np.true_divide, np.divide),
        label="/",
    )
)
neg = register(
    Op(
        "neg",
        np.negative,
        scalar="-x",
        partials=("-1.0",),
        sympy=lambda sp, x: -x,
        domain=domain(REAL),
        linear=True,
        numpy_names=(np.negative,),
        label="-",
    )
)
pos = register(
    Op(
        "pos",
        np.positive,
        scalar="x",
        partials=("1.0",),
        sympy=lambda sp, x: x,
        domain=domain(REAL),
        linear=True,
        numpy_names=(np.positive,),
        label="+",
    )
)
register(
    Op(  # noqa: A001 (the registry's name for it)
        "pow",
        np.power,
        args=("x", "y"),
        scalar="math.pow(x, y)",
        # d/dx: exactly 0 for the exponent 0 (x**0 = 1; y x^(y-1) would be 0 * inf at x = 0)
        partials=("where(y == 0, 0.0, y * pow(x, y - 1.0))", "where(x == 0, 0.0, out * log(where(x == 0, 1.0, x)))"),
        sympy=lambda sp, x, y: x**y,
        domain=domain(POSITIVE, uniform(-2.0, 2.0)),
        kinks="d/dx x**0 = 0 everywhere, x = 0 included; d/dy x**y at x = 0 is taken as 0 (its limit "
        "for y > 0); for x < 0 only integer y is defined and d/dy is not real",
        numpy_names=(np.power, np.float_power),
        label="**",
    )
)
square = register(
    Op(
        "square",
        np.square,
        scalar="x * x",
        partials=("2.0 * x",),
        sympy=lambda sp, x: x**2,
        domain=domain(REAL),
        numpy_names=(np.square,),
        label="²",
    )
)
reciprocal = register(
    Op(
        "reciprocal",
        np.reciprocal,
        scalar="1.0 / x",
        partials=("-out * out",),
        sympy=lambda sp, x: 1 / x,
        domain=domain(AWAY_FROM_ZERO),
        numpy_names=(np.reciprocal,),
        label="1/",
    )
)

# --- transcendental -------------------------------------------------------------
exp = register(
    Op(
        "exp",
        np.exp,
        scalar="math.exp(x)",
        partials=("out",),
        sympy=lambda sp, x: sp.exp(x),
        domain=domain(REAL),
        numpy_names=(np.exp,),
    )
)
expm1 = register(
    Op(
        "expm1",
        np.expm1,
        scalar="math.expm1(x)",
        partials=("out + 1.0",),
        sympy=lambda sp, x: sp.exp(x) - 1,
        domain=domain(REAL),
        numpy_names=(np.expm1,),
    )
)
log = register(
    Op(
        "log",
        np.log,
        scalar="math.log(x)",
        partials=("1.0 / x",),
        sympy=lambda sp, x: sp.log(x),
        domain=domain(POSITIVE),
        kinks="defined for x > 0 only (log(0) = -inf as in numpy)",
        numpy_names=(np.log,),
    )
)
log1p = register(
    Op(
        "log1p",
        np.log1p,
        scalar="math.log1p(x)",
        partials=("1.0 / (1.0 + x)",),
        sympy=lambda sp, x: sp.log(1 + x),
        domain=domain(uniform(-0.8, 2.0)),
        numpy_names=(np.log1p,),
    )
)
sqrt = register(
    Op(
        "sqrt",
        np.sqrt,
        scalar="math.sqrt(x)",
        partials=("0.5 / out",),
        sympy=lambda sp, x: sp.sqrt(x),
        domain=domain(POSITIVE),
        kinks="sqrt'(0) = +inf: a gradient that uses it raises NonFiniteDerivativeError "
        "naming sqrt; a gradient that does not use it (np.where masks it) stays finite. "
        "For a norm use np.linalg.norm, whose gradient at 0 is the subgradient 0.",
        numpy_names=(np.sqrt,),
    )
)
sin = register(
    Op(
        "sin",
        np.sin,
        scalar="math.sin(x)",
        partials=("cos(x)",),
        sympy=lambda sp, x: sp.sin(x),
        domain=domain(REAL),
        numpy_names=(np.sin,),
    )
)
cos = register(
    Op(
        "cos",
        np.cos,
        scalar="math.cos(x)",
        partials=("-sin(x)",),
        sympy=lambda sp, x: sp.cos(x),
        domain=domain(REAL),
        numpy_names=(np.cos,),
    )
)
tan = register(
    Op(
        "tan",
        np.tan,
        scalar="math.tan(x)",
        partials=("1.0 + out * out",),
        sympy=lambda sp, x: sp.tan(x),
        domain=domain(uniform(-1.2, 1.2)),
        numpy_names=(np.tan,),
    )
)
arcsin = register(
    Op(
        "arcsin",
        np.arcsin,
        scalar="math.asin(x)",
        partials=("1.0 / sqrt(1.0 - x * x)",),
        sympy=lambda sp, x: sp.asin(x),
        domain=domain(uniform(-0.9, 0.9)),
        numpy_names=(np.arcsin,),
    )
)
arccos = register(
    Op(
        "arccos",
        np.arccos,
        scalar="math.acos(x)",
        partials=("-1.0 / sqrt(1.0 - x * x)",),
        sympy=lambda sp, x: sp.acos(x),
        domain=domain(uniform(-0.9, 0.9)),
        numpy_names=(np.arccos,),
    )
)
arctan = register(
    Op(
        "arctan",
        np.arctan,
        scalar="math.atan(x)",
        partials=("1.0 / (1.0 + x * x)",),
        sympy=lambda sp, x: sp.atan(x),
        domain=domain(REAL),
        numpy_names=(np.arctan,),
    )
)
arctan2 = register(
    Op(
        "arctan2",
        np.arctan2,
        args=("x", "y"),
        scalar="math.atan2(x, y)",
        # numpy's argument order: arctan2(x1, x2) is the angle of the point (x2, x1)
        partials=("y / (x * x + y * y)", "-x / (x * x + y * y)"),
        sympy=lambda sp, x, y: sp.atan2(x, y),
        # second argument > 0: the angle stays within (-pi/2, pi/2), away from the 2 pi jump
        # (samples of the two arguments are combined freely by the broadcast tests)
        domain=domain(REAL, POSITIVE),
        complex_step=False,
        kinks="undefined at (0, 0) (the partials are inf / NaN there: an error); jumps by 2 pi "
        "across the negative axis of its second argument, where either side's derivative is used",
        numpy_names=(np.arctan2,),
        doc="np.arctan2(x1, x2): the angle of the point (x2, x1), in (-pi, pi].",
    )
)
hypot = register(
    Op(
        "hypot",
        np.hypot,
        args=("x", "y"),
        scalar="math.hypot(x, y)",
        # x / out, but 0 at the origin (a subgradient, as norm'(0) = 0), never 0 / 0
        partials=("x / where(out == 0.0, 1.0, out)", "y / where(out == 0.0, 1.0, out)"),
        sympy=lambda sp, x, y: sp_norm(sp, [x, y]),
        domain=domain(AWAY_FROM_ZERO, AWAY_FROM_ZERO),
        complex_step=False,
        kinks="not differentiable at (0, 0), a cone's tip: the gradient there is taken as 0, as for norm",
        numpy_names=(np.hypot,),
        doc="np.hypot(x, y) = sqrt(x^2 + y^2) without overflow.",
    )
)
logaddexp = register(
    Op(
        "logaddexp",
        np.logaddexp,
        args=("x", "y"),
        scalar="x + 0.6931471805599453 if x == y else "
        "(x + math.log1p(math.exp(y - x)) if x > y else y + math.log1p(math.exp(x - y)))",
        # softmax weights of the two inputs: smooth everywhere (the tie x == y included, where
        # a composite of max and abs has kinks that cancel only to first order), never
        # overflowing (x - out <= 0)
        partials=("exp(x - out)", "exp(y - out)"),
        sympy=lambda sp, x, y: sp.log(sp.exp(x) + sp.exp(y)),
        domain=domain(REAL, REAL),
        complex_step=False,
        kinks="none: smooth everywhere (complex-step is off only because numpy's logaddexp is real-only)",
        numpy_names=(np.logaddexp,),
        doc="np.logaddexp(x, y) = log(exp(x) + exp(y)) without overflow; d/dx = exp(x - out).",
    )
)
sinh = register(
    Op(
        "sinh",
        np.sinh,
        scalar="math.sinh(x)",
        partials=("cosh(x)",),
        sympy=lambda sp, x: sp.sinh(x),
        domain=domain(REAL),
        numpy_names=(np.sinh,),
    )
)
cosh = register(
    Op(
        "cosh",
        np.cosh,
        scalar="math.cosh(x)",
        partials=("sinh(x)",),
        sympy=lambda sp, x: sp.cosh(x),
        domain=domain(REAL),
        numpy_names=(np.cosh,),
    )
)
tanh = register(
    Op(
        "tanh",
        np.tanh,
        scalar="math.tanh(x)",
        # from the output, as JAX, PyTorch and ChainRules do: the backward pass then needs
        # no transcendental and the tape keeps only tanh's output, which the next layer
        # keeps anyway. Saturated (|x| > ~3), 1 - out^2 is exact to ~1e-16 absolute but not
        # relative: tanh(20) rounds to 1, so tanh'(20) ~ 1.7e-17 comes out as 0.
        partials=("1.0 - out * out",),
        sympy=lambda sp, x: sp.tanh(x),
        domain=domain(REAL),
        numpy_names=(np.tanh,),
    )
)

# --- activations ----------------------------------------------------------------
sigmoid = register(
    Op(
        "sigmoid",
        sigmoid_impl,
        scalar="1.0 / (1.0 + math.exp(-x)) if x >= 0.0 else math.exp(x) / (1.0 + math.exp(x))",
        # sigma(x) sigma(-x) = sigma (1 - sigma), without the cancellation of 1 - out near 1
        partials=("out * sigmoid(-x)",),
        sympy=lambda sp, x: 1 / (1 + sp.exp(-x)),
        domain=domain(REAL),
        label="σ",
        doc="The logistic function 1 / (1 + exp(-x)); sigma' = sigma (1 - sigma).",
    )
)
softplus = register(
    Op(
        "softplus",
        softplus_impl,
        scalar="x + math.log1p(math.exp(-x)) if x > 0.0 else math.log1p(math.exp(x))",
        partials=("sigmoid(x)",),
        sympy=lambda sp, x: sp.log(1 + sp.exp(x)),
        domain=domain(REAL),
        doc="ln(1 + e^x), the smooth ReLU; its derivative is the sigmoid.",
    )
)
relu = register(
    Op(
        "relu",
        lambda x: np.maximum(x, 0.0),
        scalar="x if x > 0.0 else 0.0",
        partials=("where(x > 0, 1.0, 0.0)",),
        sympy=lambda sp, x: piecewise(sp, (x, x > 0), (0, True)),
        domain=domain(AWAY_FROM_ZERO),
        complex_step=False,
        kinks="relu'(0) = 0 (the left slope: a subgradient, and 0 at the minimum per DESIGN.md)",
        doc="max(x, 0); backward copies the gradient where x > 0 (the lecture's I(z > 0)).",
    )
)
leaky_relu = register(
    Op(
        "leaky_relu",
        lambda x, alpha=0.01: np.where(x > 0, x, alpha * np.asarray(x))[()],
        params={"alpha": 0.01},
        scalar="x if x > 0.0 else alpha * x",
        partials=("where(x > 0, 1.0, alpha)",),
        sympy=lambda sp, x, alpha=0.01: piecewise(sp, (x, x > 0), (alpha * x, True)),
        domain=domain(AWAY_FROM_ZERO),
        complex_step=False,
        kinks="leaky_relu'(0) = alpha (the left slope, as relu'(0) = 0)",
        doc="x for x > 0, alpha x otherwise.",
    )
)
hard_tanh = register(
    Op(
        "hard_tanh",
        lambda x: np.clip(x, -1.0, 1.0),
        scalar="-1.0 if x < -1.0 else (1.0 if x > 1.0 else x)",
        partials=("where(abs(x) <= 1.0, 1.0, 0.0)",),
        sympy=lambda sp, x: piecewise(sp, (-1, x < -1), (1, x > 1), (x, True)),
        domain=domain(uniform(-2.0, 2.0, avoid=(-1.0, 1.0))),
        complex_step=False,
        kinks="at x = ±1 the derivative is 1: the lecture's rule copies the gradient inside [-1, 1]",
        doc="Clips to [-1, 1]; backward copies the gradient inside [-1, 1], 0 outside.",
    )
)
register(
    Op(  # noqa: A001
        "abs",
        np.abs,
        scalar="math.fabs(x)",
        partials=("sign(x)",),
        sympy=lambda sp, x: sp.Abs(x),
        domain=domain(AWAY_FROM_ZERO),
        complex_step=False,
        complex_variant="abs_complex",
        kinks="abs'(0) = 0 (a subgradient, 0 at the minimum, agrees with central differences)",
        numpy_names=(np.abs, np.absolute, np.fabs),
        label="|·|",
    )
)
maximum = register(
    Op(
        "maximum",
        np.maximum,
        args=("x", "y"),
        scalar="x if x > y else (y if y > x else (x if x == y else x + y))",  # NaN in, NaN out (numpy's)
        partials=("where(x > y, 1.0, where(x == y, 0.5, 0.0))", "where(y > x, 1.0, where(x == y, 0.5, 0.0))"),
        # the tie as its own piece, so that sympy's derivative there is the policy's even split
        sympy=lambda sp, x, y: piecewise(sp, (x, x > y), ((x + y) / 2, sp.Eq(x, y)), (y, True)),
        domain=_ties_apart,
        complex_step=False,
        kinks="on a tie x == y each input gets half the gradient (what central differences give; JAX does the same)",
        numpy_names=(np.maximum,),
    )
)
minimum = register(
    Op(
        "minimum",
        np.minimum,
        args=("x", "y"),
        scalar="x if x < y else (y if y < x else (x if x == y else x + y))",  # NaN in, NaN out (numpy's)
        partials=("where(x < y, 1.0, where(x == y, 0.5, 0.0))", "where(y < x, 1.0, where(x == y, 0.5, 0.0))"),
        # the tie as its own piece, so that sympy's derivative there is the policy's even split
        sympy=lambda sp, x, y: piecewise(sp, (x, x < y), ((x + y) / 2, sp.Eq(x, y)), (y, True)),
        domain=_ties_apart,
        complex_step=False,
        kinks="on a tie x == y each input gets half the gradient",
        numpy_names=(np.minimum,),
    )
)
clip = register(
    Op(
        "clip",
        lambda x, lo=-np.inf, hi=np.inf: np.clip(x, lo, hi),
        params={"lo": -np.inf, "hi": np.inf},
        scalar="lo if x < lo else (hi if x > hi else x)",
        partials=("where(x < lo, 0.0, where(x > hi, 0.0, 1.0))",),
        sympy=lambda sp, x, lo=-np.inf, hi=np.inf: piecewise(sp, (lo, x < lo), (hi, x > hi), (x, True)),
        domain=domain(uniform(-2.0, 2.0, avoid=(-np.inf, np.inf))),
        complex_step=False,
        kinks="derivative 1 on the closed interval [lo, hi], 0 outside (as hard_tanh)",
        numpy_names=(np.clip,),
    )
)
where = register(
    Op(
        "where",
        _where3,
        args=("c", "x", "y"),
        scalar="x if c else y",
        partials=(None, "where(c, 1.0, 0.0)", "where(c, 0.0, 1.0)"),
        sympy=sp_where,
        domain=lambda rng, shape: (
            rng.uniform(size=shape) < 0.5 if shape else bool(rng.uniform() < 0.5),
            REAL(rng, shape),
            REAL(rng, shape),
        ),
        doc="Select x where c else y. The branch not taken gets an exact zero gradient, and "
        "inf or NaN derivatives inside it do not leak through (0 * inf is taken as 0).",
        numpy_names=(np.where,),
    )
)

# --- zero-derivative ops (engines skip them) ----------------------------------------
for _name, _fn, _scalar in [
    ("sign", np.sign, "float((x > 0.0) - (x < 0.0))"),
    ("floor", np.floor, "float(math.floor(x))"),
    ("ceil", np.ceil, "float(math.ceil(x))"),
    ("rint", np.rint, None),
    ("isfinite", np.isfinite, None),
    ("isnan", np.isnan, None),
]:
    register(
        Op(
            _name,
            _fn,
            scalar=_scalar,
            nograd=True,
            numpy_names=(_fn,),
            domain=domain(AWAY_FROM_ZERO),
            doc="Piecewise constant: derivative 0 wherever it exists.",
        )
    )
for _name, _fn in [
    ("greater", np.greater),
    ("greater_equal", np.greater_equal),
    ("less", np.less),
    ("less_equal", np.less_equal),
    ("equal", np.equal),
    ("not_equal", np.not_equal),
    ("logical_and", np.logical_and),
    ("logical_or", np.logical_or),
]:
    register(
        Op(
            _name,
            _fn,
            args=("x", "y"),
            nograd=True,
            numpy_names=(_fn,),
            domain=domain(REAL, REAL),
            doc="A comparison: its result carries no derivative.",
        )
    )
register(Op("logical_not", np.logical_not, nograd=True, numpy_names=(np.logical_not,), domain=domain(REAL)))


# --- complex numbers (README, "Complex numbers": JAX's convention) ---------------------------
# A tangent is complex-linear: dz. A cotangent c of a complex value pairs with a tangent t
# as Re(c t) (no conjugate), so an analytic op's cotangent is g f'(z), the same product as
# for reals; these ops are not analytic, and their VJPs solve Re(c t) = g * JVP(t) for c.


def _sp_each(fn: Any) -> Any:
    """A sympy form applied entry by entry (the symbolic engine passes object arrays)."""
    return lambda sp, x, **params: np.vectorize(lambda e: fn(sp, e, **params), otypes=[object])(x)[()]


def _unit_conj(z: Any, out: Any) -> Any:
    """conj(z) / |z| (d|z| = Re(conj(z) dz) / |z|); 0 at z = 0, the subgradient of least
    norm, as for the real abs."""
    R = REGISTRY
    at_zero = out == 0
    return R["where"](at_zero, 0.0, R["conj"](z) / R["where"](at_zero, 1.0, out))


def _examples_on_reals_and_complex(rng: np.random.Generator) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    return [((AWAY_FROM_ZERO(rng, (3,)),), {}), ((float(AWAY_FROM_ZERO(rng, ())),), {})]


def _linear_part(name: str, numpy_fn: Any, vjp: Any, sympy_fn: Any, formula: str, doc: str) -> None:
    """Re, Im, conj: real-linear, so the JVP is the op itself on the tangent."""
    register(
        Op(
            name,
            lambda x: numpy_fn(x)[()] if isinstance(x, np.ndarray) else numpy_fn(x),
            jvp=lambda tangents, xs, out, nb: REGISTRY[name](tangents[0]),
            vjp=vjp,
            sympy=_sp_each(lambda sp, x: getattr(sp, sympy_fn)(x)),
            examples=_examples_on_reals_and_complex,
            linear=True,
            complex_ok=True,
            complex_step=False,
            kinks=f"none; not analytic ({formula}), so complex-step cannot check it",
            numpy_names=(numpy_fn,),
            doc=doc,
        )
    )


_linear_part(
    "real",
    np.real,
    lambda g, xs, out, needed: (g,),
    "re",
    "Re z",
    "Re z: the identity on reals. Cotangent of a complex z: g itself (Re(g t) = g Re t).",
)
_linear_part(
    "imag",
    np.imag,
    lambda g, xs, out, needed: (-1j * g if is_complex(xs[0]) else 0.0 * g,),
    "im",
    "Im z",
    "Im z: 0 on reals. Cotangent of a complex z: -i g (Re(-i g t) = g Im t).",
)
_linear_part(
    "conj",
    np.conjugate,
    lambda g, xs, out, needed: (REGISTRY["conj"](g),),
    "conjugate",
    "conj z",
    "conj z: the identity on reals. Cotangent: conj(g).",
)
register(
    Op(
        "abs_complex",
        np.abs,
        jvp=lambda tangents, xs, out, nb: REGISTRY["real"](_unit_conj(xs[0], out) * tangents[0]),
        vjp=lambda g, xs, out, needed: (g * _unit_conj(xs[0], out),),
        sympy=_sp_each(lambda sp, x: sp.Abs(x)),
        examples=_examples_on_reals_and_complex,
        complex_ok=True,
        complex_step=False,
        kinks="|z| is not differentiable at 0, where the subgradient 0 is returned (as for the real abs)",
        reached_by="np.abs(z) / abs(z) of a complex value (the abs op hands complex arguments to it)",
        doc="|z| of a complex z: d|z| = Re(conj(z) dz) / |z|; cotangent g conj(z) / |z|.",
    )
)


def _angle_vjp(g: Any, xs: Any, out: Any, needed: Any) -> tuple[Any]:
    z = xs[0]
    return (REGISTRY["div"](-1j * g, z) if is_complex(z) else 0.0 * g,)  # numpy's inf at z = 0


register(
    Op(
        "angle",
        lambda z, deg=False: np.angle(z, deg=deg),
        params={"deg": False},
        jvp=lambda tangents, xs, out, nb, deg=False: (
            REGISTRY["imag"](REGISTRY["div"](tangents[0], xs[0])) * (np.pi / 180 if deg else 1)
        ),
        vjp=lambda g, xs, out, needed, deg=False: _angle_vjp(g * (np.pi / 180 if deg else 1), xs, out, needed),
        sympy=_sp_each(lambda sp, x, deg=False: sp.arg(x) * (180 / sp.pi if deg else 1)),
        examples=_examples_on_reals_and_complex,
        complex_ok=True,
        complex_step=False,
        kinks="arg z is undefined at 0 (its derivative there is refused as inf / NaN) and jumps by 2 pi across "
        "the negative real axis (numpy's branch cut); 0 for real inputs away from 0",
        numpy_names=(np.angle,),
        doc="arg z = atan2(Im z, Re z): d arg = Im(dz / z); cotangent -i g / z.",
    )
)


# Ops whose rules hold for complex arguments as written: analytic ops (their partials are the
# complex derivative f'(z), and Re(g f'(z) t) pairs it with the tangent) and structural ops
# whose JVP / VJP are complex-bilinear without a conjugate; comparisons are piecewise constant
# (numpy orders complex numbers lexicographically), derivative 0. Every other op refuses
# complex (sign: z / |z| for complex z is not piecewise constant).
# (Marked in adkit/ops/__init__.py once every module has registered its ops.)
COMPLEX_SAFE = (
    "add sub mul div neg pos pow square reciprocal exp expm1 log log1p sqrt sin cos tan arcsin arccos "
    "arctan sinh cosh tanh sigmoid softplus where matmul sum mean reshape transpose broadcast_to getitem "
    "index_add concatenate stack einsum prod prod_others cumprod convolve inv solve det equal not_equal greater greater_equal less less_equal logical_and logical_or logical_not isfinite isnan"
).split()
