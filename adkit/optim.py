"""The lectures' optimisers [ECH, AGG, SCH, HAM], functional and inspectable like optax.

    opt = ad.optim.adam(lr=1e-3)
    state = opt.init(params)                          # params: an array or a dict/list/tuple of arrays
    params, state = opt.update(params, grads, state)  # grads: same structure as params

Each factory's docstring is the update rule in the lecture's symbols: theta the
parameters, g the gradient, eta the learning rate, d the momentum decay, rho a moving
average's decay, delta the stabiliser, r and s accumulators that start at 0, v a
velocity that starts at 0. The state is a plain dict (`state["step"]`, and one tree per
accumulator, shaped like the parameters) so every quantity of the slides can be printed.

A learning rate may be a number or a schedule `eta(t)` of the step index t = 0, 1, ...
(`exponential_decay`, `inverse_decay`); `clip_by_value(opt, c)` and `clip_by_norm(opt, c)`
clip the gradient before any optimiser sees it. The Nesterov rules evaluate the gradient
at a look-ahead point theta + d v, which `update` cannot know from a gradient computed at
theta: pass `grads` as a function of the parameters (e.g. `ad.grad(loss)`), and the rule
evaluates it where the lecture says.

Second order [AGG, SCH]: `newton_step`, `cg` (conjugate gradients from Hessian-vector
products only), `lbfgs`, and `hvp_fd` (the lecture's eq. 23).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from adkit.ops.core import primal
from adkit.trees import tree_flatten, tree_unflatten

Schedule = Callable[[int], float]
Rate = float | Schedule

# ---------------------------------------------------------------------------------------
# trees of parameters


def _leaves(tree: Any, what: str) -> tuple[list[np.ndarray], Any, list[bool]]:
    """Leaves as float arrays, the tree's description, and which leaves were Python scalars."""
    flat, treedef = tree_flatten(tree)
    arrays, scalar = [], []
    for leaf in flat:
        value = primal(leaf)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number, np.ndarray)):
            raise TypeError(
                f"{what}: expected arrays or numbers (or a dict / list / tuple of them); got {type(value).__name__}"
            )
        a = np.asarray(value)
        arrays.append(a if a.dtype.kind == "f" else a.astype(np.float64))
        scalar.append(not isinstance(value, np.ndarray))
    return arrays, treedef, scalar


def _rebuild(treedef: Any, arrays: Sequence[np.ndarray], scalar: Sequence[bool]) -> Any:
    return tree_unflatten(treedef, [float(a) if s else a for a, s in zip(arrays, scalar)])


def _same_structure(params: Any, grads: Any) -> list[np.ndarray]:
    """The gradient's leaves, refused unless they match the parameters' structure and shapes
    and are finite (a NaN gradient would silently poison every later step)."""
    p_leaves, p_def, _ = _leaves(params, "params")
    g_leaves, g_def, _ = _leaves(grads, "grads")
    if p_def != g_def or len(p_leaves) != len(g_leaves):
        raise ValueError("grads must have the structure of params (the same dict keys / list lengths)")
    for i, (p, g) in enumerate(zip(p_leaves, g_leaves)):
        if p.shape != g.shape:
            raise ValueError(f"grads leaf {i} has shape {g.shape}, but its parameter has shape {p.shape}")
        if not np.all(np.isfinite(g)):
            raise ValueError(
                f"grads leaf {i} is not finite ({g.ravel()[~np.isfinite(g.ravel())][0]}): the loss diverged or its "
                "gradient overflowed; lower the learning rate or clip the gradient (clip_by_norm)"
            )
    return g_leaves


# ---------------------------------------------------------------------------------------
# learning-rate schedules


def exponential_decay(eta0: float, k: float) -> Schedule:
    """eta_t = eta0 exp(-k t) [AGG]: the learning rate at step t = 0, 1, ..."""
    _check_positive(eta0=eta0)
    _check_nonnegative(k=k)
    return _Named(lambda t: eta0 * math.exp(-k * t), f"exponential_decay(eta0={eta0}, k={k})")


def inverse_decay(eta0: float, k: float) -> Schedule:
    """eta_t = eta0 / (1 + k t) [AGG]: the learning rate at step t = 0, 1, ..."""
    _check_positive(eta0=eta0)
    _check_nonnegative(k=k)
    return _Named(lambda t: eta0 / (1.0 + k * t), f"inverse_decay(eta0={eta0}, k={k})")


class _Named:
    """A schedule that prints as the call that made it."""

    def __init__(self, fn: Schedule, text: str) -> None:
        self.fn, self.text = fn, text

    def __call__(self, t: int) -> float:
        return self.fn(t)

    def __repr__(self) -> str:
        return self.text


def _rate(eta: Rate, t: int) -> float:
    return float(eta(t)) if callable(eta) else float(eta)


def _check_positive(**values: Any) -> None:
    for name, v in values.items():
        if callable(v):
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a finite number > 0 (or a schedule for a learning rate); got {v!r}")


def _check_nonnegative(**values: Any) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")


def _check_decay(**values: Any) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not 0 <= v < 1:
            raise ValueError(f"{name} must be a number in [0, 1); got {v!r}")


# ---------------------------------------------------------------------------------------
# the optimiser object

LeafStep = Callable[[np.ndarray, np.ndarray, dict[str, np.ndarray], int], tuple[np.ndarray, dict[str, np.ndarray]]]


@dataclass(frozen=True)
class Optimizer:
    """An update rule as two pure functions, optax-style.

    `init(params)` gives the state: {"step": 0, name: tree of zeros (or initial values)
    for each accumulator}. `update(params, grads, state)` returns the new parameters and
    state, never mutating its arguments. `grads` may be a function of the parameters
    returning the gradient; rules with a look-ahead (Nesterov) require one. `rule` is
    the update rule as on the slides; `hyperparams` the numbers it was built with."""

    name: str
    hyperparams: dict[str, Any]
    rule: str
    slots: dict[str, Callable[[np.ndarray], np.ndarray]] = field(repr=False)
    leaf_step: LeafStep = field(repr=False)
    lookahead_leaf: Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray] | None = field(default=None, repr=False)
    grad_transform: Callable[[list[np.ndarray]], list[np.ndarray]] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams.items())
        return f"{self.name}({args})"

    def init(self, params: Any) -> dict[str, Any]:
        leaves, treedef, _ = _leaves(params, f"{self.name}.init(params)")
        state: dict[str, Any] = {"step": 0}
        for slot, make in self.slots.items():
            state[slot] = tree_unflatten(treedef, [make(p) for p in leaves])
        return state

    def _slot_leaves(self, state: dict[str, Any], n: int) -> list[dict[str, np.ndarray]]:
        if not isinstance(state, dict) or "step" not in state or any(s not in state for s in self.slots):
            raise ValueError(f"{self.name}.update: state must come from {self.name}.init(params) or a previous update")
        per_slot = {s: tree_flatten(state[s])[0] for s in self.slots}
        if any(len(v) != n for v in per_slot.values()):
            raise ValueError(f"{self.name}.update: the state was made for parameters of another structure")
        return [{s: np.asarray(per_slot[s][i]) for s in self.slots} for i in range(n)]

    def lookahead(self, params: Any, state: dict[str, Any]) -> Any:
        """Where the rule evaluates the gradient: theta + d v for the Nesterov rules, theta
        for every other rule."""
        leaves, treedef, scalar = _leaves(params, f"{self.name}.lookahead(params)")
        if self.lookahead_leaf is None:
            return params
        slots = self._slot_leaves(state, len(leaves))
        return _rebuild(treedef, [self.lookahead_leaf(p, s) for p, s in zip(leaves, slots)], scalar)

    def update(self, params: Any, grads: Any, state: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        leaves, treedef, scalar = _leaves(params, f"{self.name}.update(params)")
        slots = self._slot_leaves(state, len(leaves))
        if callable(grads):
            grads = grads(self.lookahead(params, state))
        elif self.lookahead_leaf is not None:
            raise TypeError(
                f"{self.name} evaluates the gradient at the look-ahead point theta + d v, not at theta: pass grads as "
                f"a function of the parameters (e.g. ad.grad(loss)), or use simplified_nesterov, whose gradient is "
                f"taken at the parameters themselves"
            )
        g_leaves = _same_structure(params, grads)
        if self.grad_transform is not None:
            g_leaves = self.grad_transform(g_leaves)
        t = int(state["step"])
        new_leaves, new_slots = [], []
        for p, g, s in zip(leaves, g_leaves, slots):
            p_new, s_new = self.leaf_step(p, g.astype(p.dtype, copy=False), s, t)
            new_leaves.append(np.asarray(p_new, dtype=p.dtype))
            new_slots.append(s_new)
        new_state: dict[str, Any] = {"step": t + 1}
        for slot in self.slots:
            new_state[slot] = tree_unflatten(treedef, [s[slot] for s in new_slots])
        return _rebuild(treedef, new_leaves, scalar), new_state


def _zeros(p: np.ndarray) -> np.ndarray:
    return np.zeros_like(p)


def _optimizer(
    name: str,
    factory: Callable[..., Any],
    hyperparams: dict[str, Any],
    slots: Sequence[str],
    leaf_step: LeafStep,
    lookahead: Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray] | None = None,
    init: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> Optimizer:
    makers = {s: (init or {}).get(s, _zeros) for s in slots}
    return Optimizer(name, hyperparams, _rule_of(factory), makers, leaf_step, lookahead)


def _rule_of(factory: Callable[..., Any]) -> str:
    """The rule lines of a factory's docstring (its first paragraph)."""
    return (factory.__doc__ or "").strip().split("\n\n")[0]


# ---------------------------------------------------------------------------------------
# first-order rules [SEEDS §10-11]


def sgd(lr: Rate = 0.01) -> Optimizer:
    """theta <- theta - eta g   (gradient descent; eta = lr)"""
    _check_positive(lr=lr)
    return _optimizer("sgd", sgd, {"lr": lr}, (), lambda p, g, s, t: (p - _rate(lr, t) * g, s))


def momentum(lr: Rate = 0.01, d: float = 0.9) -> Optimizer:
    """v <- d v - eta g;  theta <- theta + v   (momentum, Echenim's form; eta = lr)

    The same iterates as `momentum_hamilton(alpha=lr, beta=d)`, whose Delta w is -v."""
    _check_positive(lr=lr)
    _check_decay(d=d)

    def step(p, g, s, t):
        v = d * s["v"] - _rate(lr, t) * g
        return p + v, {"v": v}

    return _optimizer("momentum", momentum, {"lr": lr, "d": d}, ("v",), step)


momentum_echenim = momentum


def momentum_hamilton(alpha: Rate = 0.01, beta: float = 0.9) -> Optimizer:
    """Delta_i w = alpha dJ/dw + beta Delta_(i-1) w;  w <- w - Delta_i w   (momentum, Hamilton's form)

    The same iterates as `momentum(lr=alpha, d=beta)` (Echenim's v is -Delta w)."""
    _check_positive(alpha=alpha)
    _check_decay(beta=beta)

    def step(p, g, s, t):
        delta_w = _rate(alpha, t) * g + beta * s["delta_w"]
        return p - delta_w, {"delta_w": delta_w}

    return _optimizer("momentum_hamilton", momentum_hamilton, {"alpha": alpha, "beta": beta}, ("delta_w",), step)


def nesterov(lr: Rate = 0.01, d: float = 0.9) -> Optimizer:
    """v <- d v - eta grad L(theta + d v);  theta <- theta + v   (Nesterov momentum; eta = lr)

    The gradient is taken at the look-ahead point theta + d v: pass grads as a function
    of the parameters. `simplified_nesterov` is the same method on shifted parameters."""
    _check_positive(lr=lr)
    _check_decay(d=d)

    def step(p, g, s, t):
        v = d * s["v"] - _rate(lr, t) * g
        return p + v, {"v": v}

    return _optimizer("nesterov", nesterov, {"lr": lr, "d": d}, ("v",), step, lookahead=lambda p, s: p + d * s["v"])


def simplified_nesterov(lr: Rate = 0.01, d: float = 0.9) -> Optimizer:
    """Theta <- Theta + d^2 v - eta (1 + d) g;  v <- d v - eta g   (Bengio 2012; eta = lr)

    Nesterov momentum written on the shifted parameters Theta = theta + d v, so that the
    gradient g is taken at the parameters held (Theta); Theta uses the old v."""
    _check_positive(lr=lr)
    _check_decay(d=d)

    def step(p, g, s, t):
        eta = _rate(lr, t)
        return p + d * d * s["v"] - eta * (1.0 + d) * g, {"v": d * s["v"] - eta * g}

    return _optimizer("simplified_nesterov", simplified_nesterov, {"lr": lr, "d": d}, ("v",), step)


def adagrad(lr: Rate = 0.01, delta: float = 1e-7) -> Optimizer:
    """r <- r + g ⊙ g;  theta <- theta - eta / (delta + sqrt(r)) ⊙ g   (AdaGrad; eta = lr)"""
    _check_positive(lr=lr, delta=delta)

    def step(p, g, s, t):
        r = s["r"] + g * g
        return p - _rate(lr, t) / (delta + np.sqrt(r)) * g, {"r": r}

    return _optimizer("adagrad", adagrad, {"lr": lr, "delta": delta}, ("r",), step)


def rmsprop(lr: Rate = 0.001, rho: float = 0.9, delta: float = 1e-6) -> Optimizer:
    """r <- rho r + (1 - rho) g ⊙ g;  theta <- theta - eta / sqrt(delta + r) ⊙ g   (RMSProp; eta = lr)"""
    _check_positive(lr=lr, delta=delta)
    _check_decay(rho=rho)

    def step(p, g, s, t):
        r = rho * s["r"] + (1.0 - rho) * g * g
        return p - _rate(lr, t) / np.sqrt(delta + r) * g, {"r": r}

    return _optimizer("rmsprop", rmsprop, {"lr": lr, "rho": rho, "delta": delta}, ("r",), step)


def rmsprop_nesterov(lr: Rate = 0.001, rho: float = 0.9, d: float = 0.9, delta: float = 1e-6) -> Optimizer:
    """g = grad L(theta + d v);  r <- rho r + (1 - rho) g ⊙ g;  v <- d v - eta / sqrt(delta + r) ⊙ g;
    theta <- theta + v   (RMSProp with Nesterov momentum [AGG]: W + beta V; eta = lr)

    The gradient is taken at the look-ahead point theta + d v: pass grads as a function
    of the parameters."""
    _check_positive(lr=lr, delta=delta)
    _check_decay(rho=rho, d=d)

    def step(p, g, s, t):
        r = rho * s["r"] + (1.0 - rho) * g * g
        v = d * s["v"] - _rate(lr, t) / np.sqrt(delta + r) * g
        return p + v, {"r": r, "v": v}

    hyper = {"lr": lr, "rho": rho, "d": d, "delta": delta}
    return _optimizer(
        "rmsprop_nesterov", rmsprop_nesterov, hyper, ("r", "v"), step, lookahead=lambda p, s: p + d * s["v"]
    )


def adadelta(rho: float = 0.95, delta: float = 1e-6) -> Optimizer:
    """r <- rho r + (1 - rho) g ⊙ g;  v <- -sqrt(delta + s) / sqrt(delta + r) ⊙ g;
    s <- rho s + (1 - rho) v ⊙ v;  theta <- theta + v   (AdaDelta: no step size)"""
    _check_positive(delta=delta)
    _check_decay(rho=rho)

    def step(p, g, st, t):
        r = rho * st["r"] + (1.0 - rho) * g * g
        v = -np.sqrt(delta + st["s"]) / np.sqrt(delta + r) * g
        s = rho * st["s"] + (1.0 - rho) * v * v
        return p + v, {"r": r, "s": s}

    return _optimizer("adadelta", adadelta, {"rho": rho, "delta": delta}, ("r", "s"), step)


def adam(lr: Rate = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """s <- rho1 s + (1 - rho1) g;  r <- rho2 r + (1 - rho2) g ⊙ g;
    s' = s / (1 - rho1^i);  r' = r / (1 - rho2^i);  theta <- theta - eta s' / (delta + sqrt(r'))
    (Adam with bias correction; eta = lr, rho1 = beta1, rho2 = beta2, delta = eps, i = step 1, 2, ...)"""
    _check_positive(lr=lr, eps=eps)
    _check_decay(beta1=beta1, beta2=beta2)

    def step(p, g, st, t):
        i = t + 1
        s = beta1 * st["s"] + (1.0 - beta1) * g
        r = beta2 * st["r"] + (1.0 - beta2) * g * g
        s_hat, r_hat = s / (1.0 - beta1**i), r / (1.0 - beta2**i)
        return p - _rate(lr, t) * s_hat / (eps + np.sqrt(r_hat)), {"s": s, "r": r}

    return _optimizer("adam", adam, {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps}, ("s", "r"), step)


def delta_bar_delta(lr: float = 0.01, kappa: float = 0.001, phi: float = 0.1, theta: float = 0.7) -> Optimizer:
    """delta = g;  eta <- eta + kappa if delta_bar ⊙ delta > 0, eta (1 - phi) if < 0;
    theta_w <- theta_w - eta ⊙ g;  delta_bar <- (1 - theta) delta + theta delta_bar
    (delta-bar-delta, Jacobs 1988: a rate per component, raised by kappa while its gradient
    keeps the sign of its running average delta_bar, cut by the factor 1 - phi when it flips;
    the rates start at lr, delta_bar at 0)"""
    _check_positive(lr=lr)
    _check_nonnegative(kappa=kappa)
    _check_decay(phi=phi, theta=theta)

    def step(p, g, s, t):
        agree = s["delta_bar"] * g
        eta = np.where(agree > 0, s["eta"] + kappa, np.where(agree < 0, s["eta"] * (1.0 - phi), s["eta"]))
        return p - eta * g, {"eta": eta, "delta_bar": (1.0 - theta) * g + theta * s["delta_bar"]}

    hyper = {"lr": lr, "kappa": kappa, "phi": phi, "theta": theta}
    init = {"eta": lambda p: np.full_like(p, lr)}
    return _optimizer("delta_bar_delta", delta_bar_delta, hyper, ("eta", "delta_bar"), step, init=init)


# ---------------------------------------------------------------------------------------
# gradient clipping [SCH]: composes with any optimiser


def _clipped(opt: Optimizer, name: str, extra: dict[str, Any], rule: str, transform) -> Optimizer:
    inner = opt.grad_transform
    both = transform if inner is None else (lambda gs: inner(transform(gs)))
    hyper = {"inner": opt, **extra}
    return Optimizer(
        name, hyper, f"{rule}; then {opt.name}: {opt.rule}", opt.slots, opt.leaf_step, opt.lookahead_leaf, both
    )


def clip_by_value(opt: Optimizer, limit: float) -> Optimizer:
    """g <- clip(g, -c, c) componentwise, then `opt`'s rule (c = limit)."""
    _check_positive(limit=limit)
    rule = "g <- clip(g, -c, c)"
    return _clipped(opt, "clip_by_value", {"limit": limit}, rule, lambda gs: [np.clip(g, -limit, limit) for g in gs])


def clip_by_norm(opt: Optimizer, max_norm: float) -> Optimizer:
    """g <- g c / ||g|| if ||g|| > c, then `opt`'s rule (c = max_norm; ||g|| the L2 norm
    over every parameter together, so the direction of the whole gradient is kept)."""
    _check_positive(max_norm=max_norm)

    def transform(gs: list[np.ndarray]) -> list[np.ndarray]:
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in gs))
        return gs if norm <= max_norm else [g * (max_norm / norm) for g in gs]

    return _clipped(opt, "clip_by_norm", {"max_norm": max_norm}, "g <- g c / ||g|| if ||g|| > c", transform)


# ---------------------------------------------------------------------------------------
# running an optimiser on a loss


class Trajectory(NamedTuple):
    """The result of `run`: final parameters, every iterate (path[0] is the start) and the
    loss at each of them."""

    params: Any
    path: list[Any]
    losses: np.ndarray


def run(loss: Callable[[Any], Any], params: Any, opt: Optimizer, steps: int, engine: str = "reverse") -> Trajectory:
    """`steps` updates of `opt` on `loss(params)`, gradients from adkit (`engine`); keeps
    the path, for the lecture's trajectory plots."""
    from adkit.transforms import grad, value_and_grad

    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0; got {steps!r}")
    value_grad = value_and_grad(loss, engine=engine)
    grad_fn = grad(loss, engine=engine)
    state = opt.init(params)
    path, losses = [params], []
    for _ in range(steps):
        value, g = value_grad(params)
        losses.append(float(value))
        params, state = opt.update(params, grad_fn if opt.lookahead_leaf is not None else g, state)
        path.append(params)
    losses.append(float(loss(params)))
    return Trajectory(params, path, np.array(losses))


# ---------------------------------------------------------------------------------------
# second order [AGG, SCH]


def _vector(x: Any, what: str) -> np.ndarray:
    if isinstance(x, (dict, list, tuple)):
        raise TypeError(f"{what}: expected a float or a numpy array (flatten a dict of parameters first)")
    a = np.asarray(primal(x), dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} must be finite; got {a}")
    return a


def _like(a: np.ndarray, x: Any) -> Any:
    return float(a) if np.ndim(x) == 0 and not isinstance(x, np.ndarray) else a


def newton_step(f: Callable[[Any], Any], x: Any, damping: float = 0.0) -> Any:
    """W* = W0 - (H + damping I)^-1 grad L(W0)   (Newton's method [AGG]: no step size; one
    step is exact for a quadratic; damping > 0 is Levenberg-Marquardt)

    The Hessian is adkit's forward-over-reverse `hessian`. Newton's step goes to the
    stationary point of the quadratic model, so it is attracted to saddle points as much
    as to minima (the lecture's warning)."""
    from adkit.transforms import grad, hessian

    _check_nonnegative(damping=damping)
    x0 = _vector(x, "newton_step(x)")
    n = x0.size
    g = np.asarray(grad(f)(_like(x0, x)), dtype=np.float64).reshape(n)
    H = np.asarray(hessian(f)(_like(x0, x)), dtype=np.float64).reshape(n, n) + damping * np.eye(n)
    try:
        step = np.linalg.solve(H, g)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(
            f"newton_step: the Hessian{' + damping I' if damping else ''} at x = {x0} is singular, so the quadratic "
            "model has no unique stationary point; pass damping > 0"
        ) from None
    return _like((x0.reshape(n) - step).reshape(x0.shape), x)


class CGResult(NamedTuple):
    """x solves H x = b; nit steps were taken; residual_norms[k] = ||b - H x_k||."""

    x: np.ndarray
    nit: int
    residual_norms: np.ndarray
    converged: bool


def cg(
    hvp: Callable[[np.ndarray], Any],
    b: Any,
    x0: Any = None,
    tol: float = 1e-10,
    maxiter: int | None = None,
) -> CGResult:
    """Conjugate gradients for H x = b, i.e. the minimum of L(x) = x^T H x / 2 - b^T x, with
    H only through Hessian-vector products v -> H v [AGG]:

        q_0 = -grad L(x_0);  x_(t+1) = x_t + a_t q_t with the exact line search
        a_t = -q_t^T grad L(x_t) / q_t^T H q_t;
        q_(t+1) = -grad L(x_(t+1)) + (q_t^T H grad L(x_(t+1)) / q_t^T H q_t) q_t

    (grad L = H x - b). In exact arithmetic d steps solve a d-dimensional problem. Stops
    when ||b - H x|| <= tol ||b||, or after maxiter steps (default 10 d) with
    converged=False. H must be symmetric positive definite: a direction with
    q^T H q <= 0 is refused."""
    b_arr = _vector(b, "cg(b)")
    x = np.zeros_like(b_arr) if x0 is None else _vector(x0, "cg(x0)").copy()
    if x.shape != b_arr.shape:
        raise ValueError(f"cg: x0 has shape {x.shape} but b has shape {b_arr.shape}")
    _check_positive(tol=tol)
    maxiter = 10 * max(b_arr.size, 1) if maxiter is None else maxiter
    if not isinstance(maxiter, (int, np.integer)) or maxiter < 0:
        raise ValueError(f"maxiter must be an integer >= 0; got {maxiter!r}")

    def apply(v: np.ndarray) -> np.ndarray:
        out = np.asarray(primal(hvp(v)), dtype=np.float64)
        if out.shape != b_arr.shape:
            raise ValueError(f"cg: hvp(v) returned shape {out.shape}; expected {b_arr.shape} (the shape of b)")
        return out

    gradient = apply(x) - b_arr if x0 is not None else -b_arr
    norms = [float(np.linalg.norm(gradient))]
    target = tol * float(np.linalg.norm(b_arr))
    q = -gradient
    nit = 0
    while norms[-1] > target and nit < maxiter:
        Hq = apply(q)
        curvature = float(np.vdot(q, Hq))
        if not curvature > 0:
            raise ValueError(
                f"cg: q^T H q = {curvature:.3g} <= 0 at step {nit}: H is not positive definite along q, so CG's "
                "line search has no minimum; add damping (H + lambda I) or use newton_step"
            )
        a = -float(np.vdot(q, gradient)) / curvature
        x = x + a * q
        gradient = gradient + a * Hq
        q = -gradient + (float(np.vdot(Hq, gradient)) / curvature) * q
        norms.append(float(np.linalg.norm(gradient)))
        nit += 1
    return CGResult(x, nit, np.array(norms), norms[-1] <= target)


class LBFGSResult(NamedTuple):
    """x the minimiser found, fun = f(x), nit iterations, grad at x, path of iterates
    (path[0] = x0), nfev evaluations of f and its gradient, converged if ||grad||_inf <= tol."""

    x: np.ndarray
    fun: float
    nit: int
    grad: np.ndarray
    path: np.ndarray
    nfev: int
    converged: bool


def lbfgs(
    f: Callable[[Any], Any],
    x0: Any,
    m: int = 10,
    tol: float = 1e-6,
    maxiter: int = 1000,
    engine: str = "reverse",
) -> LBFGSResult:
    """Limited-memory BFGS [AGG, quasi-Newton]: the inverse Hessian is approximated from the
    last m pairs s_k = x_(k+1) - x_k, y_k = grad L(x_(k+1)) - grad L(x_k) by the two-loop
    recursion (Nocedal & Wright, Algorithm 7.4), scaled by gamma = s^T y / y^T y; the step
    length by backtracking from 1 until the Armijo condition
    L(x + a p) <= L(x) + 1e-4 a grad^T p holds. Pairs with s^T y <= 0 are skipped (they
    would make the approximation indefinite). Gradients from adkit (`engine`)."""
    from adkit.transforms import value_and_grad

    if not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be an integer >= 1 (pairs kept); got {m!r}")
    _check_positive(tol=tol)
    x = _vector(x0, "lbfgs(x0)").astype(np.float64).copy()
    shape = x.shape
    value_grad = value_and_grad(lambda z: f(z.reshape(shape)), engine=engine)
    nfev = 0

    def evaluate(z: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal nfev
        nfev += 1
        value, g = value_grad(z)
        return float(value), np.asarray(g, dtype=np.float64).reshape(-1)

    x = x.reshape(-1)
    fx, g = evaluate(x)
    if not math.isfinite(fx) or not np.all(np.isfinite(g)):
        raise ValueError(f"lbfgs: f or its gradient is not finite at x0 = {x.reshape(shape)}")
    pairs: list[tuple[np.ndarray, np.ndarray, float]] = []
    path = [x.copy()]
    nit = 0
    while np.max(np.abs(g), initial=0.0) > tol and nit < maxiter:
        # two-loop recursion: p = -H_k g
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(pairs):
            a = rho * float(s @ q)
            alphas.append(a)
            q -= a * y
        if pairs:
            s, y, _ = pairs[-1]
            q *= float(s @ y) / float(y @ y)
        for (s, y, rho), a in zip(pairs, reversed(alphas)):
            q += (a - rho * float(y @ q)) * s
        p = -q
        slope = float(g @ p)
        if slope >= 0:  # not a descent direction (round-off): restart from steepest descent
            pairs.clear()
            p, slope = -g, -float(g @ g)
        step = 1.0 if pairs else min(1.0, 1.0 / max(float(np.linalg.norm(g)), 1e-300))
        while True:
            x_new = x + step * p
            f_new, g_new = evaluate(x_new)
            if math.isfinite(f_new) and f_new <= fx + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-20:
                return LBFGSResult(x.reshape(shape), fx, nit, g.reshape(shape), np.array(path), nfev, False)
        s, y = x_new - x, g_new - g
        if float(s @ y) > 1e-12 * float(np.linalg.norm(s)) * float(np.linalg.norm(y)):
            pairs.append((s, y, 1.0 / float(s @ y)))
            if len(pairs) > m:
                pairs.pop(0)
        x, fx, g = x_new, f_new, g_new
        path.append(x.copy())
        nit += 1
    converged = bool(np.max(np.abs(g), initial=0.0) <= tol)
    return LBFGSResult(x.reshape(shape), fx, nit, g.reshape(shape), np.array(path), nfev, converged)


def hvp_fd(f: Callable[[Any], Any], x: Any, v: Any, delta: float = 1e-6, engine: str = "reverse") -> Any:
    """H v ≈ (grad L(W0 + delta v) - grad L(W0)) / delta   (the lecture's eq. 23 [AGG])

    Two gradients and no Hessian; the error is O(delta) until round-off in the difference
    (about eps / delta) takes over. `ad.hvp` is the exact product (forward over reverse)."""
    from adkit.transforms import grad

    _check_positive(delta=delta)
    x0, direction = _vector(x, "hvp_fd(x)"), _vector(v, "hvp_fd(v)")
    if x0.shape != direction.shape:
        raise ValueError(f"hvp_fd: v has shape {direction.shape} but x has shape {x0.shape}")
    g = grad(f, engine=engine)
    g0 = np.asarray(g(_like(x0, x)), dtype=np.float64)
    g1 = np.asarray(g(_like(x0 + delta * direction, x)), dtype=np.float64)
    return _like((g1 - g0) / delta, x)


__all__ = [
    "CGResult",
    "LBFGSResult",
    "Optimizer",
    "Trajectory",
    "adadelta",
    "adagrad",
    "adam",
    "cg",
    "clip_by_norm",
    "clip_by_value",
    "delta_bar_delta",
    "exponential_decay",
    "hvp_fd",
    "inverse_decay",
    "lbfgs",
    "momentum",
    "momentum_echenim",
    "momentum_hamilton",
    "nesterov",
    "newton_step",
    "rmsprop",
    "rmsprop_nesterov",
    "run",
    "sgd",
    "simplified_nesterov",
]
