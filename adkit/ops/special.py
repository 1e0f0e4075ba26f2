"""scipy.special functions as registry ops: erf, gammaln, digamma, Bessel functions, ...

scipy is optional and imported lazily: `import adkit` never imports it. The entries
below are ordinary registry ops whose numpy implementation calls `scipy.special.<name>`
on first use, so every engine and the registry-wide tests cover them like any op (with
sympy's erf, loggamma, polygamma, besselj, ... as the symbolic counterparts).

How user code reaches them: scipy.special's functions are numpy ufuncs, so
`scipy.special.erf(x)` on a traced x calls `__array_ufunc__`, and adkit.numpy_api asks
`scipy_ufunc(ufunc)` here for the op. That lookup resolves the table `SCIPY_UFUNCS`
(scipy attribute name -> op, or an adapter for functions with an order argument) against
`scipy.special` once, the first time a ufunc adkit does not know meets a traced value
while scipy is loaded. Orders of Bessel functions and of polygamma (jv(v, x), polygamma(n,
x)) are parameters without a derivative: a traced order is refused by name.

scipy.special.logsumexp, softmax, log_softmax and polygamma are plain Python functions that
convert their input with np.asarray, which a traced value cannot survive; their
counterparts taking the same arguments are here (`logsumexp` with `b=` and
`return_sign=`, ...) and in `adkit.scipy.special`, which mirrors jax.scipy.special.

Rules follow DLMF: erf' = 2/sqrt(pi) exp(-x^2) (7.10.1); log Gamma' = psi, psi^(n)' =
psi^(n+1) (5.15); d/dx C_v = (C_{v-1} - C_{v+1}) / 2 for C = J, Y (10.6.1), I_v' =
(I_{v-1} + I_{v+1}) / 2 and K_v' = -(K_{v-1} + K_{v+1}) / 2 (10.29.1); inverse functions
by 1 / f'(f^-1(x)); the regularized incomplete gamma and beta functions in x only, by their
integrands (8.2.4, 8.17.2; their shape parameters a, b are plain numbers, as Bessel orders).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from adkit.errors import UnsupportedFunctionError
from adkit.ops.core import REGISTRY, Op, Tracer, primal, register, shape_of
from adkit.ops.elementwise import AWAY_FROM_ZERO, POSITIVE, REAL, domain, piecewise, uniform

_scipy_special: Any = None


def sp_abs(sp: Any, x: Any) -> Any:
    """|x| in sympy as a Piecewise: sympy differentiates Abs only of expressions it knows to be
    real, and the arguments built by the symbolic engine (atan of a log, ...) often are not."""
    return piecewise(sp, (-x, x < 0), (x, True))


def scipy_special() -> Any:
    """The scipy.special module, imported on first use, with a clear error when scipy is absent."""
    global _scipy_special
    if _scipy_special is None:
        try:
            import scipy.special
        except ImportError as exc:
            raise ImportError("adkit's scipy.special ops need scipy: pip install scipy (or adkit[scipy])") from exc
        _scipy_special = scipy.special
    return _scipy_special


def _real_only(name: str, complex_form: Any) -> Any:
    """scipy.special.<name> for real input; `complex_form(sc, z)` (an analytic formula)
    for complex input, which scipy's real-only loop refuses: complex-step needs it."""

    def impl(*xs: Any) -> Any:
        sc = scipy_special()
        if any(np.iscomplexobj(x) for x in xs):
            return complex_form(sc, *xs)
        return getattr(sc, name)(*xs)

    impl.__name__ = name
    return impl


def _scipy(name: str) -> Any:
    def impl(*xs: Any) -> Any:
        return getattr(scipy_special(), name)(*xs)

    impl.__name__ = name
    return impl


# Samplers keep test points away from stationary points (derivative 0): there a relative
# check of a finite-difference engine compares rounding noise with a vanishing derivative.
GAMMA_MIN = 1.4616321449683622  # where Gamma, log Gamma are smallest and digamma is 0
AROUND_GAMMA_MIN = uniform(0.2, 4.0, avoid=(GAMMA_MIN,), gap=0.25)
REAL_ONLY = "scipy's implementation takes real input only, so complex-step does not apply"
BESSEL_JY = (
    "smooth, but scipy's complex Bessel J and Y lose the tiny imaginary part complex-step "
    "relies on, so complex-step is off"
)
ORDER = "the order is a parameter without a derivative (a traced order is refused)"

# scipy.special attribute -> op name (plain ufuncs) or adapter (ufuncs with an order argument)
SCIPY_UFUNCS: dict[str, Any] = {}


def _special(name: str, *, scipy_names: tuple[str, ...] | None = None, **fields: Any) -> Op:
    """Register the op `name` (impl defaults to scipy.special.<name>), reached as scipy.special.<scipy_names>."""
    scipy_names = (name,) if scipy_names is None else scipy_names
    fields.setdefault("impl", _scipy(name))
    where = " / ".join(f"scipy.special.{n}" for n in scipy_names) or "adkit.scipy.special." + name
    op = register(Op(name, reached_by=f"{where} on a traced value", **fields))
    for n in scipy_names:
        SCIPY_UFUNCS[n] = name
    return op


# --- error functions and the normal distribution ------------------------------------
_special(
    "erf",
    scalar="math.erf(x)",
    partials=("2.0 / sqrt(pi) * exp(-(x * x))",),
    sympy=lambda sp, x: sp.erf(x),
    domain=domain(REAL),
    doc="The error function (2/sqrt(pi)) int_0^x exp(-t^2) dt; erf' = 2/sqrt(pi) exp(-x^2).",
)
_special(
    "erfc",
    scalar="math.erfc(x)",
    partials=("-2.0 / sqrt(pi) * exp(-(x * x))",),
    sympy=lambda sp, x: sp.erfc(x),
    domain=domain(REAL),
    doc="1 - erf(x), accurate where erf(x) is near 1.",
)
_special(
    "erfcx",
    partials=("erfcx_derivative(x, n=1)",),
    sympy=lambda sp, x: sp.exp(x * x) * sp.erfc(x),
    domain=domain(REAL),
    kinks="overflows to inf for x below about -26.6 (the derivative is then refused as overflowed)",
    doc="The scaled complementary error function exp(x^2) erfc(x).",
)
_ERFCX_MAX_ORDER = 3
_ERFCX_ASYMPTOTIC = 6.5  # from here on the asymptotic series (30 terms) is used


def _erfcx_derivative(x: Any, n: int = 1) -> Any:
    """The n-th derivative of erfcx, accurate for large x where the closed form cancels.

    erfcx' = 2 x erfcx - 2 / sqrt(pi), and e_(k+1) = 2 x e_k + 2 k e_(k-1) (DLMF 7.10):
    for x >> 1 both terms are ~ 2 / sqrt(pi) and their difference ~ -1 / (sqrt(pi) x^2)
    keeps only a 1 / x^2 fraction of the digits (erfcx'(1e5) would be off in the 6th digit).
    For x >= 6.5 the asymptotic series erfcx(x) ~ sum_k (-1)^k (2k-1)!! / (sqrt(pi) 2^k x^(2k+1))
    (DLMF 7.12.1) is differentiated term by term instead; below, the recurrence loses about
    (2 x^2)^n / n! ulps. Worst relative errors seen against mpmath (x in 6 to 6.5): 2e-14
    for n = 1, 6e-13 for n = 2, 2e-11 for n = 3; higher orders are refused.
    """
    n = int(n)
    if not 0 <= n <= _ERFCX_MAX_ORDER:
        raise ValueError(f"erfcx: derivatives of order {n} are not supported (0 to {_ERFCX_MAX_ORDER} are)")
    x = np.asarray(x, dtype=np.result_type(x, 1.0))  # float32 stays float32
    far = x.real >= _ERFCX_ASYMPTOTIC
    y = np.where(far, 0.0, x)
    e_prev, e = None, scipy_special().erfcx(y)
    for k in range(n):
        e_prev, e = e, 2.0 * y * e + (2.0 * k * e_prev if k else -2.0 / math.sqrt(math.pi))
    z = np.where(far, x, _ERFCX_ASYMPTOTIC)
    series = np.zeros_like(x)
    coefficient = 1.0 / math.sqrt(math.pi)  # (-1)^k (2k-1)!! / (sqrt(pi) 2^k)
    for k in range(30):
        power = -(2 * k + 1)  # d^n/dx^n x^p = p (p - 1) ... (p - n + 1) x^(p - n)
        series = series + coefficient * math.prod(range(power - n + 1, power + 1)) * z ** (power - n)
        coefficient *= -(2 * k + 1) / 2.0
    return np.where(far, series, e)[()]


def _sp_erfcx_derivative(sp: Any, x: Any, n: int = 1) -> Any:
    t = sp.Dummy("t")
    return sp.diff(sp.exp(t * t) * sp.erfc(t), t, int(n)).subs(t, x)


_special(
    "erfcx_derivative",
    scipy_names=(),
    impl=_erfcx_derivative,
    params={"n": 1},
    partials=("erfcx_derivative(x, n=n + 1)",),
    sympy=_sp_erfcx_derivative,
    # x <= 2.5: the registry tests' sympy oracle evaluates the closed form in 15 digits,
    # which cancels for larger x; tests/test_special.py checks large x against mpmath
    domain=domain(uniform(-2.0, 2.5)),
    examples=lambda rng: [((uniform(-2.0, 2.5)(rng, (4,)),), {"n": 2})],
    doc="The n-th derivative of erfcx (n <= 3), accurate for large x where 2 x erfcx - 2/sqrt(pi) cancels.",
)
REGISTRY["erfcx_derivative"].reached_by = "the derivative rules of scipy.special.erfcx and log_ndtr"
_special(
    "erfinv",
    partials=("sqrt(pi) / 2.0 * exp(out * out)",),
    sympy=lambda sp, x: sp.erfinv(x),
    domain=domain(uniform(-0.9, 0.9)),
    complex_step=False,
    kinks=f"defined on (-1, 1): at ±1 value and derivative are infinite (refused); {REAL_ONLY}",
    doc="The inverse of erf; erfinv'(x) = sqrt(pi)/2 exp(erfinv(x)^2).",
)
_special(
    "erfcinv",
    partials=("-sqrt(pi) / 2.0 * exp(out * out)",),
    sympy=lambda sp, x: sp.erfinv(1 - x),  # sympy cannot evaluate its erfcinv numerically
    domain=domain(uniform(0.1, 1.9)),
    complex_step=False,
    kinks=f"defined on (0, 2): at 0 and 2 value and derivative are infinite (refused); {REAL_ONLY}",
    doc="The inverse of erfc.",
)
_special(
    "ndtr",
    partials=("exp(-0.5 * x * x) / sqrt(2 * pi)",),
    sympy=lambda sp, x: sp.erfc(-x / sp.sqrt(2)) / 2,
    domain=domain(REAL),
    doc="The standard normal CDF Phi(x); Phi' is the normal density.",
)
_special(
    "log_ndtr",
    # phi / Phi written through erfcx: exp(-x^2/2) cancels, so nothing underflows for x << 0
    # (where phi and Phi both underflow) and the rule is exact for x >> 0 (Phi -> 1)
    partials=("sqrt(2 / pi) / erfcx(-x / sqrt(2))",),
    sympy=lambda sp, x: sp.log(sp.erfc(-x / sp.sqrt(2)) / 2),
    domain=domain(REAL),
    doc="log Phi(x), accurate for very negative x; its derivative phi/Phi ~ -x there.",
)
_special(
    "ndtri",
    partials=("sqrt(2 * pi) * exp(0.5 * out * out)",),
    sympy=lambda sp, x: sp.sqrt(2) * sp.erfinv(2 * x - 1),
    domain=domain(uniform(0.05, 0.95)),
    complex_step=False,
    kinks=f"defined on (0, 1): at 0 and 1 value and derivative are infinite (refused); {REAL_ONLY}",
    doc="The inverse of ndtr (the standard normal quantile); ndtri' = 1 / phi(ndtri(p)).",
)
# --- logistic -------------------------------------------------------------------
_special(
    "expit",
    impl=_real_only("expit", lambda sc, z: 1.0 / (1.0 + np.exp(-z))),
    scalar="1.0 / (1.0 + math.exp(-x)) if x >= 0.0 else math.exp(x) / (1.0 + math.exp(x))",
    partials=("out * expit(-x)",),
    sympy=lambda sp, x: 1 / (1 + sp.exp(-x)),
    domain=domain(REAL),
    doc="The logistic sigmoid; expit' = expit(x) expit(-x).",
)
_special(
    "logit",
    impl=_real_only("logit", lambda sc, z: np.log(z / (1.0 - z))),
    partials=("1.0 / (x * (1.0 - x))",),
    sympy=lambda sp, x: sp.log(x / (1 - x)),
    domain=domain(uniform(0.05, 0.95)),
    kinks="defined on (0, 1): at 0 and 1 the value is ∓inf and the derivative infinite (refused)",
    doc="log(p / (1 - p)), the inverse of expit.",
)
_special(
    "log_expit",
    impl=_real_only("log_expit", lambda sc, z: -np.log1p(np.exp(-z))),
    partials=("expit(-x)",),
    sympy=lambda sp, x: -sp.log(1 + sp.exp(-x)),
    domain=domain(REAL),
    doc="log(expit(x)) without underflow for very negative x.",
)

# --- gamma and beta -------------------------------------------------------------
_special(
    "gamma",
    scalar="math.gamma(x)",
    partials=("out * digamma(x)",),
    sympy=lambda sp, x: sp.gamma(x),
    domain=domain(AROUND_GAMMA_MIN),
    kinks="poles at 0, -1, -2, ... (value inf or nan there: the derivative is refused)",
    doc="Gamma'(x) = Gamma(x) psi(x).",
)
_special(
    "gammaln",
    scalar="math.lgamma(x)",
    partials=("digamma(x)",),
    sympy=lambda sp, x: sp.log(sp_abs(sp, sp.gamma(x))),
    domain=domain(AROUND_GAMMA_MIN),
    complex_step=False,
    kinks=f"log|Gamma(x)|: poles at 0, -1, -2, ... (value inf, derivative refused); {REAL_ONLY}",
    doc="log|Gamma(x)|; its derivative is psi(x) on both sides of each pole.",
)
_special(
    "loggamma",
    partials=("digamma(x)",),
    sympy=lambda sp, x: sp.loggamma(x),
    domain=domain(AROUND_GAMMA_MIN),
    kinks="real input: defined for x > 0 (nan for x <= 0, as scipy)",
    doc="The principal branch of log Gamma; loggamma' = psi.",
)
_special(
    "digamma",
    scipy_names=("digamma", "psi"),
    partials=("polygamma(x, n=1)",),
    sympy=lambda sp, x: sp.polygamma(0, x),
    domain=domain(uniform(0.2, 4.0)),
    kinks="poles at 0, -1, -2, ... (value inf or nan: the derivative is refused)",
    doc="psi = Gamma' / Gamma; psi' = polygamma(1, x), the trigamma function.",
)


def _polygamma_impl(x: Any, n: int = 1) -> Any:
    return scipy_special().polygamma(n, x)


_special(
    "polygamma",
    scipy_names=(),
    impl=_polygamma_impl,
    params={"n": 1},
    partials=("polygamma(x, n=n + 1)",),
    sympy=lambda sp, x, n=1: sp.polygamma(n, x),
    domain=domain(uniform(0.2, 4.0)),
    examples=lambda rng: [((uniform(0.2, 4.0)(rng, (3,)),), {"n": k}) for k in (0, 2, 3)],
    complex_step=False,
    kinks=f"poles at 0, -1, -2, ... (refused); n is {ORDER}; {REAL_ONLY}",
    doc="psi^(n)(x), the n-th derivative of digamma; its derivative is psi^(n+1).",
)
_special(
    "rgamma",
    # for x < 1/2 the derivative of the reflection form sin(pi x) Gamma(1 - x) / pi (DLMF 5.5.3):
    # -psi(x) / Gamma(x) is 0 * inf at the poles of Gamma and loses digits next to them
    partials=(
        "where(x < 0.5, gamma(1.0 - x) * (cos(pi * x) - sin(pi * x) * digamma(1.0 - x) / pi), -digamma(x) * out)",
    ),
    sympy=lambda sp, x: piecewise(
        sp, (sp.sin(sp.pi * x) * sp.gamma(1 - x) / sp.pi, x < sp.Rational(1, 2)), (1 / sp.gamma(x), True)
    ),
    domain=domain(AROUND_GAMMA_MIN),
    kinks="none: entire, with 1/Gamma(-n) = 0 and derivative (-1)^n n! there; below about -170 "
    "Gamma(1 - x) overflows and the derivative is refused as overflowed",
    doc="1 / Gamma(x), entire; (1/Gamma)' = -psi(x) / Gamma(x), by the reflection formula for x < 1/2.",
)


def _incomplete(name: str, n_shape: int) -> Any:
    """scipy.special.<name>(a, [b,] x), registered as <name>(x, a=..., [b=...]) with plain a, b."""

    def impl(x: Any, a: float = 1.5, b: float = 2.5) -> Any:
        return getattr(scipy_special(), name)(*((a, b)[:n_shape]), x)

    def adapter(*args: Any) -> Any:
        shapes = {
            letter: float(_plain_order(f"scipy.special.{name}", v, what=f"the shape parameter {letter}"))
            for letter, v in zip("ab", args[:n_shape])
        }
        return REGISTRY[name](args[n_shape], **shapes)

    impl.__name__ = name
    return impl, adapter


_SHAPE = "a is a parameter: d/da has no closed form (a traced a is refused by name)"
_GAMMA_DENSITY = "exp(xlogy(a - 1.0, x) - x - gammaln(a))"  # x^(a-1) e^-x / Gamma(a)
for _name, _sign, _sympy in (
    ("gammainc", "", lambda sp, x, a=1.5: sp.lowergamma(a, x) / sp.gamma(a)),
    ("gammaincc", "-", lambda sp, x, a=1.5: sp.uppergamma(a, x) / sp.gamma(a)),
):
    _impl, SCIPY_UFUNCS[_name] = _incomplete(_name, 1)
    _special(
        _name,
        scipy_names=(),
        impl=_impl,
        params={"a": 1.5},
        partials=(_sign + _GAMMA_DENSITY,),
        sympy=_sympy,
        domain=domain(uniform(0.2, 4.0)),
        examples=lambda rng: [((uniform(0.2, 4.0)(rng, (3,)),), {"a": a}) for a in (0.5, 1.0, 3.5)],
        complex_step=False,
        kinks=f"defined for x >= 0, a > 0; at x = 0 with a < 1 the derivative is infinite (refused); {_SHAPE}; "
        + REAL_ONLY,
        doc=f"The regularized {'lower' if not _sign else 'upper'} incomplete gamma function "
        f"{'P' if not _sign else 'Q'}(a, x) (DLMF 8.2.4); d/dx = {_sign or '+'}x^(a-1) e^(-x) / Gamma(a).",
    )
    REGISTRY[_name].reached_by = f"scipy.special.{_name}(a, x) on a traced x"

_impl, SCIPY_UFUNCS["betainc"] = _incomplete("betainc", 2)
_special(
    "betainc",
    scipy_names=(),
    impl=_impl,
    params={"a": 1.5, "b": 2.5},
    # x^(a-1) (1-x)^(b-1) / B(a, b)
    partials=("exp(xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - betaln(a, b))",),
    sympy=lambda sp, x, a=1.5, b=2.5: sp.betainc_regularized(a, b, 0, x),
    domain=domain(uniform(0.05, 0.95)),
    examples=lambda rng: [((uniform(0.05, 0.95)(rng, (3,)),), {"a": a, "b": b}) for a, b in ((0.5, 3.0), (2.0, 0.7))],
    complex_step=False,
    kinks=f"defined for 0 <= x <= 1; at x = 0 (a < 1) or 1 (b < 1) the derivative is infinite (refused); "
    f"{_SHAPE.replace('a is a', 'a, b are').replace('d/da', 'd/da, d/db').replace('a traced a', 'a traced a or b')}; "
    + REAL_ONLY,
    doc="The regularized incomplete beta function I_x(a, b) (DLMF 8.17.2); d/dx = x^(a-1) (1-x)^(b-1) / B(a, b).",
)
REGISTRY["betainc"].reached_by = "scipy.special.betainc(a, b, x) on a traced x"
_special(
    "beta",
    args=("a", "b"),
    impl=_real_only("beta", lambda sc, a, b: sc.gamma(a) * sc.gamma(b) / sc.gamma(a + b)),
    partials=("out * (digamma(a) - digamma(a + b))", "out * (digamma(b) - digamma(a + b))"),
    sympy=lambda sp, a, b: sp.beta(a, b),
    domain=domain(uniform(0.3, 3.0), uniform(0.3, 3.0)),
    kinks="poles where a, b or a + b is 0, -1, -2, ... (refused)",
    doc="B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b); dB/da = B (psi(a) - psi(a + b)).",
)
_special(
    "betaln",
    args=("a", "b"),
    partials=("digamma(a) - digamma(a + b)", "digamma(b) - digamma(a + b)"),
    sympy=lambda sp, a, b: sp.log(sp_abs(sp, sp.beta(a, b))),
    domain=domain(uniform(0.3, 3.0), uniform(0.3, 3.0)),
    complex_step=False,
    kinks=f"log|B(a, b)|: poles where a, b or a + b is 0, -1, -2, ... (refused); {REAL_ONLY}",
    doc="log|B(a, b)|.",
)

# --- x log y and entropies --------------------------------------------------------
_special(
    "xlogy",
    args=("x", "y"),
    partials=("log(y)", "where(x == 0.0, 0.0, x / y)"),
    sympy=lambda sp, x, y: piecewise(sp, (0, sp.Eq(x, 0)), (x * sp.log(y), True)),
    domain=domain(REAL, uniform(0.2, 3.0, avoid=(1.0,), gap=0.2)),
    kinks="xlogy(0, y) = 0 for every y (scipy's convention), so d/dy there is 0; at y = 0 with "
    "x != 0 the value is -inf and d/dx infinite (refused)",
    doc="x log(y), with 0 log 0 = 0.",
)
_special(
    "xlog1py",
    args=("x", "y"),
    partials=("log1p(y)", "where(x == 0.0, 0.0, x / (1.0 + y))"),
    sympy=lambda sp, x, y: piecewise(sp, (0, sp.Eq(x, 0)), (x * sp.log(1 + y), True)),
    domain=domain(REAL, uniform(-0.8, 2.0)),
    kinks="xlog1py(0, y) = 0 for every y, so d/dy there is 0; at y = -1 with x != 0 the value is -inf (refused)",
    doc="x log(1 + y), with 0 log(1 + y) = 0.",
)
_special(
    "entr",
    impl=_real_only("entr", lambda sc, z: -z * np.log(z)),
    partials=("-(log(x) + 1.0)",),
    sympy=lambda sp, x: -x * sp.log(x),
    domain=domain(uniform(0.1, 3.0, avoid=(0.3679,), gap=0.1)),
    kinks="entr(0) = 0 but entr'(0) = +inf (refused); entr(x) = -inf for x < 0",
    doc="-x log(x), the entropy integrand.",
)
_special(
    "rel_entr",
    args=("x", "y"),
    impl=_real_only("rel_entr", lambda sc, x, y: x * np.log(x / y)),
    partials=("log(x / y) + 1.0", "-x / y"),
    sympy=lambda sp, x, y: x * sp.log(x / y),
    domain=domain(POSITIVE, POSITIVE),
    kinks="x log(x / y) for x, y > 0; at x = 0 d/dx is -inf (refused); inf outside the domain",
    doc="The relative-entropy integrand x log(x / y).",
)
_special(
    "kl_div",
    args=("x", "y"),
    impl=_real_only("kl_div", lambda sc, x, y: x * np.log(x / y) - x + y),
    partials=("log(x / y)", "1.0 - x / y"),
    sympy=lambda sp, x, y: x * sp.log(x / y) - x + y,
    domain=domain(POSITIVE, POSITIVE),
    kinks="x log(x / y) - x + y for x, y > 0; at x = 0 d/dx is -inf (refused); inf outside the domain",
    doc="The Kullback-Leibler integrand x log(x / y) - x + y.",
)

# --- Bessel functions ---------------------------------------------------------------
_special(
    "j0",
    complex_step=False,
    partials=("-j1(x)",),
    sympy=lambda sp, x: sp.besselj(0, x),
    domain=domain(AWAY_FROM_ZERO),
    kinks=BESSEL_JY,
    doc="The Bessel function J_0; J_0' = -J_1.",
)
_special(
    "j1",
    complex_step=False,
    partials=("0.5 * (j0(x) - jv(x, v=2.0))",),
    sympy=lambda sp, x: sp.besselj(1, x),
    domain=domain(uniform(-2.5, 2.5, avoid=(-1.8412, 1.8412), gap=0.2)),
    kinks=BESSEL_JY,
    doc="The Bessel function J_1; J_1' = (J_0 - J_2) / 2.",
)
_special(
    "y0",
    complex_step=False,
    partials=("-y1(x)",),
    sympy=lambda sp, x: sp.bessely(0, x),
    domain=domain(uniform(1.2, 3.5, avoid=(2.1971,), gap=0.2)),
    kinks=f"defined for x > 0 (-inf at 0, nan below); {BESSEL_JY}",
    doc="The Bessel function Y_0; Y_0' = -Y_1.",
)
_special(
    "y1",
    complex_step=False,
    partials=("0.5 * (y0(x) - yv(x, v=2.0))",),
    sympy=lambda sp, x: sp.bessely(1, x),
    domain=domain(uniform(0.3, 2.0)),
    kinks=f"defined for x > 0 (-inf at 0, nan below); {BESSEL_JY}",
    doc="The Bessel function Y_1; Y_1' = (Y_0 - Y_2) / 2.",
)
_special(
    "i0",
    impl=_real_only("i0", lambda sc, z: sc.iv(0, z)),
    partials=("i1(x)",),
    sympy=lambda sp, x: sp.besseli(0, x),
    domain=domain(AWAY_FROM_ZERO),
    doc="The modified Bessel function I_0; I_0' = I_1.",
)
_special(
    "i1",
    impl=_real_only("i1", lambda sc, z: sc.iv(1, z)),
    partials=("0.5 * (i0(x) + iv(x, v=2.0))",),
    sympy=lambda sp, x: sp.besseli(1, x),
    domain=domain(REAL),
    doc="The modified Bessel function I_1; I_1' = (I_0 + I_2) / 2.",
)
_EXP_SCALED = (
    "scaled by exp(-|x|), so at x = 0 the derivative jumps by 2 * value: it is taken as the mean of the two sides"
)
_special(
    "i0e",
    partials=("i1e(x) - sign(x) * out",),
    sympy=lambda sp, x: sp.exp(-sp_abs(sp, x)) * sp.besseli(0, x),
    domain=domain(AWAY_FROM_ZERO),
    complex_step=False,
    kinks=f"{_EXP_SCALED} (0: the maximum)",
    doc="exp(-|x|) I_0(x).",
)
_special(
    "i1e",
    partials=("0.5 * (i0e(x) + ive(x, v=2.0)) - sign(x) * out",),
    sympy=lambda sp, x: sp.exp(-sp_abs(sp, x)) * sp.besseli(1, x),
    domain=domain(uniform(-2.0, 2.0, avoid=(-1.5451, 0.0, 1.5451), gap=0.2)),
    complex_step=False,
    kinks="exp(-|x|) I_1(x) is once differentiable at 0 (derivative 1/2); its second derivative jumps there",
    doc="exp(-|x|) I_1(x).",
)
_special(
    "k0",
    impl=_real_only("k0", lambda sc, z: sc.kv(0, z)),
    partials=("-k1(x)",),
    sympy=lambda sp, x: sp.besselk(0, x),
    domain=domain(POSITIVE),
    kinks="defined for x > 0 (inf at 0)",
    doc="The modified Bessel function K_0; K_0' = -K_1.",
)
_special(
    "k1",
    impl=_real_only("k1", lambda sc, z: sc.kv(1, z)),
    partials=("-0.5 * (k0(x) + kv(x, v=2.0))",),
    sympy=lambda sp, x: sp.besselk(1, x),
    domain=domain(POSITIVE),
    kinks="defined for x > 0 (inf at 0)",
    doc="The modified Bessel function K_1; K_1' = -(K_0 + K_2) / 2.",
)
_special(
    "k0e",
    impl=_real_only("k0e", lambda sc, z: sc.kve(0, z)),
    partials=("out - k1e(x)",),
    sympy=lambda sp, x: sp.exp(x) * sp.besselk(0, x),
    domain=domain(POSITIVE),
    kinks="defined for x > 0 (inf at 0)",
    doc="exp(x) K_0(x).",
)
_special(
    "k1e",
    impl=_real_only("k1e", lambda sc, z: sc.kve(1, z)),
    partials=("out - 0.5 * (k0e(x) + kve(x, v=2.0))",),
    sympy=lambda sp, x: sp.exp(x) * sp.besselk(1, x),
    domain=domain(POSITIVE),
    kinks="defined for x > 0 (inf at 0)",
    doc="exp(x) K_1(x).",
)


def _plain_order(function: str, order: Any, kind: str = "real", what: str = "the order") -> Any:
    """The order argument of a Bessel function or polygamma (or the shape parameter of an
    incomplete gamma or beta function: `what`) as a plain number (kind "real", "integer" or
    "natural"), or a refusal naming the function."""
    if isinstance(order, Tracer):
        raise UnsupportedFunctionError(
            f"{function}: the derivative with respect to {what} is not supported (it has no closed form); "
            f"differentiate with respect to x only, passing {what} as a plain number, not a traced value"
        )
    if np.ndim(order) != 0:
        raise UnsupportedFunctionError(
            f"{function}: an array for {what} is not supported on traced values; call it once per value"
        )
    value = order.item() if isinstance(order, np.generic) else order
    if kind == "real":
        return value
    if not float(value).is_integer() or (kind == "natural" and value < 0):
        wanted = "a non-negative integer" if kind == "natural" else "an integer"
        raise ValueError(f"{function}: the order must be {wanted}, got {value!r}")
    return int(value)


def _order_adapter(op_name: str, scipy_name: str) -> Any:
    kind = "integer" if scipy_name == "yn" else "real"

    def adapter(order: Any, x: Any) -> Any:
        return REGISTRY[op_name](x, v=_plain_order(f"scipy.special.{scipy_name}", order, kind))

    return adapter


def _order_examples(lo: float, hi: float):
    return lambda rng: [((uniform(lo, hi)(rng, (3,)),), {"v": v}) for v in (0, 1.5, 2.5)]


def _bessel(
    name: str, rule: str, sympy: Any, lo: float, hi: float, kinks: str, scipy_names: tuple[str, ...], avoid=()
) -> None:
    """An order-v Bessel function scipy.special.<name>(v, x), registered as <name>(x, v=...)."""

    def impl(x: Any, v: float = 1) -> Any:
        return getattr(scipy_special(), name)(v, x)

    impl.__name__ = name
    _special(
        name,
        scipy_names=(),
        impl=impl,
        params={"v": 1},
        partials=(rule,),
        sympy=sympy,
        domain=domain(uniform(lo, hi, avoid=avoid, gap=0.2)),
        examples=_order_examples(lo, hi),
        kinks=f"{kinks}; v is {ORDER}" if kinks else "",
        complex_step=name not in ("ive", "jv", "yv"),
        doc=f"scipy.special.{name}(v, x); the order v is a parameter (no derivative).",
    )
    for n in scipy_names:
        SCIPY_UFUNCS[n] = _order_adapter(name, n)
    REGISTRY[name].reached_by = " / ".join(f"scipy.special.{n}(v, x)" for n in scipy_names) + " on a traced x"


_bessel(
    "jv",
    "0.5 * (jv(x, v=v - 1.0) - jv(x, v=v + 1.0))",
    lambda sp, x, v=1: sp.besselj(v, x),
    0.2,
    3.0,
    BESSEL_JY,
    ("jv", "jn"),
    avoid=(1.8412,),  # J_1's maximum (the default order v = 1)
)
_bessel(
    "yv",
    "0.5 * (yv(x, v=v - 1.0) - yv(x, v=v + 1.0))",
    lambda sp, x, v=1: sp.bessely(v, x),
    0.3,
    2.0,
    f"defined for x > 0; {BESSEL_JY}",
    ("yv", "yn"),
)
_bessel(
    "iv",
    "0.5 * (iv(x, v=v - 1.0) + iv(x, v=v + 1.0))",
    lambda sp, x, v=1: sp.besseli(v, x),
    0.2,
    3.0,
    "",
    ("iv",),
)
_bessel(
    "ive",
    "0.5 * (ive(x, v=v - 1.0) + ive(x, v=v + 1.0)) - sign(x) * out",
    lambda sp, x, v=1: sp.exp(-sp_abs(sp, x)) * sp.besseli(v, x),
    0.2,
    3.0,
    f"exp(-|x|) I_v(x): {_EXP_SCALED}",
    ("ive",),
)
_bessel(
    "kv",
    "-0.5 * (kv(x, v=v - 1.0) + kv(x, v=v + 1.0))",
    lambda sp, x, v=1: sp.besselk(v, x),
    0.2,
    3.0,
    "defined for x > 0",
    ("kv",),
)
_bessel(
    "kve",
    "out - 0.5 * (kve(x, v=v - 1.0) + kve(x, v=v + 1.0))",
    lambda sp, x, v=1: sp.exp(x) * sp.besselk(v, x),
    0.2,
    3.0,
    "defined for x > 0",
    ("kve",),
)


# --- dispatch: scipy ufuncs on traced values ------------------------------------------------


_adopted: dict[Any, Any] = {}
_DEGREE = math.pi / 180.0
# scipy ufuncs that are compositions of registry ops (scipy's copies of numpy functions too)
_SCIPY_COMPOSITES: dict[str, Any] = {
    "log1p": lambda x: REGISTRY["log1p"](x),
    "expm1": lambda x: REGISTRY["expm1"](x),
    "cbrt": lambda x: REGISTRY["cbrt"](x),
    "exp2": lambda x: REGISTRY["exp"](x * math.log(2.0)),
    "exp10": lambda x: REGISTRY["exp"](x * math.log(10.0)),
    "sindg": lambda x: REGISTRY["sin"](x * _DEGREE),
    "cosdg": lambda x: REGISTRY["cos"](x * _DEGREE),
    "round": lambda x: scipy_special().round(primal(x)),  # piecewise constant: derivative 0
}


def scipy_ufunc(ufunc: Any) -> Any:
    """What handles scipy.special's `ufunc` on traced values: a registry op or an adapter
    (None for a ufunc that is not scipy's or has no entry). scipy is only looked at when
    it is already loaded (the caller passed one of its ufuncs, so it is)."""
    if not _adopted:
        sc = sys.modules.get("scipy.special")
        if sc is None:
            return None
        for attr, target in SCIPY_UFUNCS.items():
            fn = getattr(sc, attr, None)
            if isinstance(fn, np.ufunc):  # the first name wins where scipy has aliases (jn is jv)
                _adopted.setdefault(fn, REGISTRY[target] if isinstance(target, str) else target)
        for attr, handler in _SCIPY_COMPOSITES.items():
            fn = getattr(sc, attr, None)
            if isinstance(fn, np.ufunc):
                _adopted.setdefault(fn, handler)
    return _adopted.get(ufunc)


def ufunc_name(ufunc: Any) -> str:
    """`scipy.special.gammainc` or `np.sin`: the public name of a ufunc, for error messages."""
    sc = sys.modules.get("scipy.special")
    name = getattr(ufunc, "__name__", str(ufunc))
    if sc is not None and getattr(sc, name, None) is ufunc and getattr(np, name, None) is not ufunc:
        return f"scipy.special.{name}"
    return f"np.{name}"


# --- scipy.special's Python functions, for traced values ------------------------------------


def polygamma(n: Any, x: Any) -> Any:
    """scipy.special.polygamma(n, x) on traced x (n a plain non-negative integer)."""
    return REGISTRY["polygamma"](x, n=_plain_order("scipy.special.polygamma", n, "natural"))


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(int(a) % ndim for a in ((axis,) if np.ndim(axis) == 0 else axis))


def logsumexp(a: Any, axis: Any = None, b: Any = None, keepdims: bool = False, return_sign: bool = False) -> Any:
    """scipy.special.logsumexp: log(sum(b * exp(a))) over `axis`, for traced a and b.

    Without b it is adkit's logsumexp op (gradient: the softmax). With b, the sum is
    shifted by the max of a (a constant: d/dm [log sum b e^(a - m) + m] = 0, so the shift
    needs no derivative) and log|s| is taken; return_sign=True also returns sign(s), as
    scipy does. Without return_sign a negative sum gives nan, as in scipy.
    """
    R = REGISTRY
    if b is None and not return_sign:
        return R["logsumexp"](a, axis=axis, keepdims=bool(keepdims))
    if b is None:
        b = 1.0
    shape = np.broadcast_shapes(shape_of(a), shape_of(b))
    axes = _axes(axis, len(shape))
    a_plain = np.broadcast_to(np.asarray(primal(a), dtype=float), shape)
    with np.errstate(invalid="ignore"):
        shift = np.max(a_plain, axis=axes, keepdims=True) if a_plain.size else np.zeros((1,) * len(shape))
    shift = np.where(np.isfinite(shift), shift, 0.0)
    total = R["sum"](b * R["exp"](a - shift), axis=axes, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = R["log"](R["abs"](total) if return_sign else total) + shift
    if not keepdims:
        out = R["reshape"](out, shape=tuple(n for i, n in enumerate(shape) if i not in axes))
    if not return_sign:
        return out
    sign = np.sign(primal(total))
    return out, (sign if keepdims else sign.reshape(shape_of(out)))


def softmax(x: Any, axis: Any = None) -> Any:
    """scipy.special.softmax: exp(x) / sum(exp(x)) over `axis` (default: every entry)."""
    return REGISTRY["softmax"](x, axis=_axes(axis, len(shape_of(x))))


def log_softmax(x: Any, axis: Any = None) -> Any:
    """scipy.special.log_softmax: x - logsumexp(x) over `axis`, without forming softmax."""
    return x - REGISTRY["logsumexp"](x, axis=_axes(axis, len(shape_of(x))), keepdims=True)


def multigammaln(a: Any, d: int) -> Any:
    """scipy.special.multigammaln(a, d): log of the multivariate gamma function Gamma_d(a),
    d (d - 1) / 4 log(pi) + sum_{j=1}^{d} log Gamma(a + (1 - j) / 2), for traced a (d a plain
    integer). Defined for a > (d - 1) / 2, as in scipy (which raises ValueError below)."""
    d = _plain_order("scipy.special.multigammaln", d, "natural")
    if np.any(np.asarray(primal(a)) <= 0.5 * (d - 1)):
        raise ValueError(
            f"scipy.special.multigammaln: condition a ({primal(a)}) > 0.5 * (d-1) ({0.5 * (d - 1)}) not met"
        )
    total = 0.25 * d * (d - 1) * math.log(math.pi)
    for j in range(1, d + 1):
        total = total + REGISTRY["gammaln"](a + 0.5 * (1 - j))
    return total
