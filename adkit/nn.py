"""The lectures' network pieces [RAB, AGG, SCH], as plain functions on dicts of arrays.

Parameters are a plain dict {"W1": ..., "b1": ..., "W2": ...} (rows of x are examples,
W_l has shape (r_(l-1), r_l)), so `ad.grad(loss)(params)` differentiates a loss directly,
with any engine, and optimisers from `adkit.optim` update the same dict. Nothing here
knows an engine: every function is ordinary numpy code on registry ops.

    params = nn.init_mlp([4, 16, 3], init="glorot", seed=0)
    loss = lambda p: nn.softmax_cross_entropy(nn.mlp(p, X, "sigmoid"), y)
    grads = ad.grad(loss)(params)
    nn.layer_grad_norms(grads)          # ||dL/db_l|| per layer: vanishing / exploding?
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adkit.ops import REGISTRY
from adkit.ops.core import primal

# the activations of the lectures, straight from the op registry
ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "sigmoid": REGISTRY["sigmoid"],
    "tanh": np.tanh,
    "relu": REGISTRY["relu"],
    "leaky_relu": REGISTRY["leaky_relu"],
    "hard_tanh": REGISTRY["hard_tanh"],
    "softplus": REGISTRY["softplus"],
    "identity": lambda v: v,
}


def activation(name: str | Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An activation by name (one of ACTIVATIONS), or a callable passed through."""
    if callable(name):
        return name
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)} or pass a function"
        ) from None


# ---------------------------------------------------------------------------------------
# initialisation [AGG, ECH]

INITIALISERS: dict[str, Callable[[int, int], float]] = {
    "lecun": lambda r_in, r_out: np.sqrt(1.0 / r_in),  # std sqrt(1/r), r the fan-in
    "he": lambda r_in, r_out: np.sqrt(2.0 / r_in),  # std sqrt(2/r), for ReLU
    "glorot": lambda r_in, r_out: np.sqrt(2.0 / (r_in + r_out)),  # std sqrt(2/(r_in + r_out))
}


def init_weights(r_in: int, r_out: int, init: str = "lecun", rng: np.random.Generator | None = None) -> np.ndarray:
    """An (r_in, r_out) Gaussian weight matrix with the lecture's standard deviation:
    "lecun" sqrt(1/r), "he" sqrt(2/r) (ReLU), "glorot" sqrt(2/(r_in + r_out)); r = r_in
    is the fan-in. Random weights break the symmetry between hidden units."""
    if init not in INITIALISERS:
        raise ValueError(f"unknown initialiser {init!r}; choose one of {sorted(INITIALISERS)}")
    for name, r in (("r_in", r_in), ("r_out", r_out)):
        if not isinstance(r, (int, np.integer)) or r < 1:
            raise ValueError(f"{name} must be a positive integer; got {r!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    return rng.standard_normal((r_in, r_out)) * INITIALISERS[init](r_in, r_out)


def init_mlp(
    sizes: Sequence[int],
    init: str = "lecun",
    seed: int = 0,
    batch_norm: bool = False,
    bias: float = 0.0,
) -> dict[str, np.ndarray]:
    """Parameters of a fully connected network with layer widths `sizes` (inputs first):
    W_l (sizes[l-1], sizes[l]) from `init_weights`, biases b_l filled with `bias` (a small
    positive bias helps ReLU units start active). With batch_norm, every hidden layer l
    gets gamma_l = 1 and beta_l = 0 instead of b_l (the mean subtraction would cancel b_l;
    beta_l is the layer's bias)."""
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least the input and output widths; got {list(sizes)}")
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    depth = len(sizes) - 1
    for k in range(1, depth + 1):
        params[f"W{k}"] = init_weights(sizes[k - 1], sizes[k], init, rng)
        if batch_norm and k < depth:
            params[f"gamma{k}"] = np.ones(sizes[k])
            params[f"beta{k}"] = np.zeros(sizes[k])
        else:
            params[f"b{k}"] = np.full(sizes[k], float(bias))
    return params


def _depth(params: dict[str, Any]) -> int:
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict {{'W1': ..., 'b1': ..., ...}}; got {type(params).__name__}")
    layers = sorted(int(m.group(1)) for k in params if (m := re.fullmatch(r"W(\d+)", k)))
    if not layers or layers != list(range(1, len(layers) + 1)):
        raise ValueError(f"params must hold weights W1, W2, ... WL without gaps; got keys {sorted(params)}")
    return len(layers)


# ---------------------------------------------------------------------------------------
# layers


def dense(x: Any, W: Any, b: Any = None) -> Any:
    """x W + b: a fully connected layer on a batch x of shape (n, r_in)."""
    out = x @ W
    return out if b is None else out + b


def batch_norm(v: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Any:
    """Training-mode batch normalisation over the batch axis 0 [AGG, SCH]:

        mu = mean_i v_i;  sigma^2 = mean_i (v_i - mu)^2 + eps;  v_hat = (v - mu) / sigma;
        a = gamma v_hat + beta

    gamma and beta are learned by backpropagating through mu and sigma as well (every
    example's output depends on the whole batch). A batch of one example is refused: its
    variance is 0 and v_hat is 0 whatever the input."""
    mu, var = batch_stats(v)
    return batch_norm_inference(v, gamma, beta, mu, var, eps)


def batch_stats(v: Any) -> tuple[Any, Any]:
    """The batch mean and the (biased) batch variance of v over axis 0."""
    n = np.shape(primal(v))[0] if np.ndim(primal(v)) else 0
    if n < 2:
        raise ValueError(
            f"batch_norm in training mode needs a batch of at least 2 examples (got {n}): the statistics of one "
            "example are its own value; use training=False (running averages) for single examples"
        )
    mu = np.mean(v, axis=0)
    return mu, np.mean((v - mu) ** 2, axis=0)


def batch_norm_inference(v: Any, gamma: Any, beta: Any, mean: Any, var: Any, eps: float = 1e-5) -> Any:
    """Batch normalisation with given statistics (inference mode: the running averages, or
    population statistics): a = gamma (v - mean) / sqrt(var + eps) + beta."""
    return gamma * ((v - mean) / np.sqrt(var + eps)) + beta


def init_running(params: dict[str, Any]) -> dict[str, np.ndarray]:
    """Running averages for each batch-normalised layer l: mean_l = 0, var_l = 1."""
    running = {}
    for key, gamma in params.items():
        if key.startswith("gamma"):
            k = key[len("gamma") :]
            running[f"mean{k}"] = np.zeros(np.shape(gamma))
            running[f"var{k}"] = np.ones(np.shape(gamma))
    return running


def update_running(running: dict[str, Any], stats: dict[str, Any], momentum: float = 0.9) -> dict[str, np.ndarray]:
    """running <- momentum running + (1 - momentum) batch statistic, for every layer's mean
    and var (the statistics `mlp(..., return_stats=True)` returns). A new dict."""
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
    missing = sorted(set(stats) - set(running))
    if missing:
        raise ValueError(f"running averages lack {missing}: make them with nn.init_running(params)")
    out = dict(running)
    for key, value in stats.items():
        out[key] = momentum * np.asarray(running[key]) + (1.0 - momentum) * np.asarray(primal(value))
    return out


def mlp(
    params: dict[str, Any],
    x: Any,
    activation_fn: str | Callable[[Any], Any] = "sigmoid",
    training: bool = True,
    running: dict[str, Any] | None = None,
    eps: float = 1e-5,
    return_stats: bool = False,
) -> Any:
    """The network's output logits: for hidden layers l = 1 .. L-1,
    h_l = act(h_(l-1) W_l + b_l), or act(batch_norm(h_(l-1) W_l; gamma_l, beta_l)) where
    params has gamma_l; the last layer is linear, h_(L-1) W_L + b_L (losses take logits).

    Batch-normalised layers use the batch's statistics when training, the `running`
    averages when not (`training=False` requires them). With return_stats, returns
    (logits, {"mean_l": ..., "var_l": ...}) of the batch, for `update_running`."""
    act = activation(activation_fn)
    depth = _depth(params)
    stats: dict[str, Any] = {}
    h = x
    for k in range(1, depth + 1):
        v = h @ params[f"W{k}"]
        if k < depth and f"gamma{k}" in params:
            gamma, beta = params[f"gamma{k}"], params[f"beta{k}"]
            if training:
                mu, var = batch_stats(v)
                stats[f"mean{k}"], stats[f"var{k}"] = mu, var
            else:
                if running is None or f"mean{k}" not in running:
                    raise ValueError(
                        f"mlp(training=False) needs the running averages of batch-normalised layer {k}: pass "
                        "running=nn.init_running(params) updated with nn.update_running during training"
                    )
                mu, var = running[f"mean{k}"], running[f"var{k}"]
            v = batch_norm_inference(v, gamma, beta, mu, var, eps)
        elif f"b{k}" in params:
            v = v + params[f"b{k}"]
        h = act(v) if k < depth else v
    return (h, stats) if return_stats else h


# ---------------------------------------------------------------------------------------
# losses (means over the batch), penalty, metrics


def _labels(labels: Any, n_classes: int, n: int) -> np.ndarray:
    """Integer class labels as one-hot rows; probability rows passed through."""
    y = np.asarray(labels)
    if y.ndim == 1:
        if y.dtype.kind not in "iu" or y.size != n or (y.size and (y.min() < 0 or y.max() >= n_classes)):
            raise ValueError(f"labels must be {n} integers in 0..{n_classes - 1}, or an ({n}, {n_classes}) array")
        return one_hot(y, n_classes)
    if y.shape != (n, n_classes):
        raise ValueError(f"labels of shape {y.shape} do not match logits of shape {(n, n_classes)}")
    return y.astype(np.float64)


def one_hot(labels: Any, n_classes: int) -> np.ndarray:
    """Rows e_(y_i) of the identity: (n,) integer labels -> (n, n_classes)."""
    return np.eye(n_classes)[np.asarray(labels)]


def mse(pred: Any, target: Any) -> Any:
    """Mean squared error mean((y_hat - y)^2) over every entry."""
    return np.mean((pred - target) ** 2)


def binary_cross_entropy(logits: Any, targets: Any) -> Any:
    """Mean of -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z)) over the entries, computed
    from the logits z as softplus(z) - y z (never log(0), never overflow; its gradient
    sigmoid(z) - y is the lecture's y_hat - y)."""
    return np.mean(REGISTRY["softplus"](logits) - targets * logits)


def softmax_cross_entropy(logits: Any, labels: Any) -> Any:
    """Mean over the batch of -sum_c y_c log softmax(z)_c = logsumexp(z) - sum_c y_c z_c,
    from the logits z (the max-shifted logsumexp never overflows; the gradient is
    softmax(z) - y, the lecture's y_hat - y). labels: integers or (n, C) probability rows."""
    shape = np.shape(primal(logits))
    if len(shape) != 2:
        raise ValueError(f"softmax_cross_entropy expects logits of shape (n, classes); got shape {shape}")
    y = _labels(labels, shape[1], shape[0])
    return np.mean(REGISTRY["logsumexp"](logits, axis=1) - np.sum(y * logits, axis=1))


def l2_penalty(params: dict[str, Any], lam: float, prefix: str = "W") -> Any:
    """lambda sum_l ||W_l||_F^2 over the weights (keys starting with `prefix`; biases and
    batch-norm parameters are not penalised) [AGG]."""
    weights = [v for k, v in params.items() if k.startswith(prefix)]
    if not weights:
        raise ValueError(f"l2_penalty: no parameters whose name starts with {prefix!r} in {sorted(params)}")
    total = np.sum(weights[0] ** 2)
    for W in weights[1:]:
        total = total + np.sum(W**2)
    return lam * total


def accuracy(logits: Any, labels: Any) -> float:
    """Fraction of rows whose largest logit is the label's class."""
    return float(np.mean(np.argmax(np.asarray(primal(logits)), axis=1) == np.asarray(labels)))


def layer_grad_norms(grads: dict[str, Any], names: Sequence[str] = ("b", "beta")) -> np.ndarray:
    """||dL/db_l|| for l = 1 .. L (the first of `names` present for each layer: b_l, or
    beta_l for a batch-normalised layer): the lectures' vanishing / exploding diagnostic.
    names=("W",) gives the weights' Frobenius norms."""
    norms = []
    for k in range(1, _depth(grads) + 1):
        key = next((f"{n}{k}" for n in names if f"{n}{k}" in grads), None)
        if key is None:
            raise ValueError(f"layer {k} has none of {[f'{n}{k}' for n in names]} in the gradient")
        norms.append(float(np.linalg.norm(np.asarray(grads[key]))))
    return np.array(norms)


__all__ = [
    "ACTIVATIONS",
    "INITIALISERS",
    "accuracy",
    "activation",
    "batch_norm",
    "batch_norm_inference",
    "batch_stats",
    "binary_cross_entropy",
    "dense",
    "init_mlp",
    "init_running",
    "init_weights",
    "l2_penalty",
    "layer_grad_norms",
    "mlp",
    "mse",
    "one_hot",
    "softmax_cross_entropy",
    "update_running",
]
