"""adkit: the same derivatives computed five ways, side by side.

forward (dual numbers), reverse (a tape and one backward sweep), symbolic (sympy),
numeric (finite differences) and paths (the sum over every path of the products of
local derivatives) all read one op registry (`adkit.ops`). Plain numpy code is
differentiated unchanged.

    >>> import numpy as np, adkit as ad
    >>> ad.grad(lambda x, y: np.sin(x * y) + x, argnums=(0, 1))(1.0, 2.0)
"""

from adkit import numpy_api as _numpy_api  # noqa: F401 (installs numpy dispatch)
from adkit import numpy_arrays as _numpy_arrays  # noqa: F401 (adds numpy's array vocabulary to it)
from adkit.compare import compare  # eager: the submodule of the same name must not shadow it
from adkit.engines.numeric import numeric_grad, numeric_jacobian
from adkit.engines.paths import PathBudgetExceeded, heaviest_paths, iter_paths, paths_budget
from adkit.engines.symbolic import symbolic_derivative
from adkit.errors import (
    AdkitError,
    AdkitTypeError,
    AdkitValueError,
    InPlaceUpdateError,
    LeakedTracerError,
    NestedEngineError,
    NonFiniteDerivativeError,
    TracerConversionError,
    UndefinedDerivativeError,
    UnsupportedFunctionError,
)
from adkit.graph import Graph, label, trace
from adkit.ops import REGISTRY, Op, primal, register
from adkit.transforms import ENGINES, grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp

_R = REGISTRY
# ops numpy lacks (numpy's own names work on traced values unchanged)
sigmoid = _R["sigmoid"]
relu = _R["relu"]
leaky_relu = _R["leaky_relu"]
hard_tanh = _R["hard_tanh"]
softplus = _R["softplus"]
softmax = _R["softmax"]
logsumexp = _R["logsumexp"]
product = _R["product"]
norm = _R["norm"]
conv2d = _R["conv2d"]

__version__ = "0.1.0"

# what is not needed to differentiate anything loads on first use: the gradient checker,
# the harness and its graph families, the training lectures' modules
_LAZY = {
    "check_grad": "adkit.check",
    "assert_grad": "adkit.check",
    "taylor_test": "adkit.check",
    "check": "adkit.check",
}
_LAZY_MODULES = ("optim", "nn", "data", "bench", "families")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return module if name == "check" else getattr(module, name)
    if name == "jit":  # adkit.jit loads on first use; the package is callable: ad.jit(fn)
        import importlib

        return importlib.import_module("adkit.jit")
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f"adkit.{name}")
    raise AttributeError(f"module 'adkit' has no attribute {name!r}")


__all__ = [
    "assert_grad",
    "check_grad",
    "numeric_grad",
    "numeric_jacobian",
    "taylor_test",
    "Graph",
    "label",
    "conv2d",
    "bench",
    "families",
    "compare",
    "trace",
    "PathBudgetExceeded",
    "heaviest_paths",
    "iter_paths",
    "paths_budget",
    "symbolic_derivative",
    "ENGINES",
    "REGISTRY",
    "AdkitError",
    "AdkitTypeError",
    "AdkitValueError",
    "InPlaceUpdateError",
    "NestedEngineError",
    "TracerConversionError",
    "LeakedTracerError",
    "NonFiniteDerivativeError",
    "Op",
    "UnsupportedFunctionError",
    "UndefinedDerivativeError",
    "grad",
    "jit",
    "hard_tanh",
    "hessian",
    "hvp",
    "jacobian",
    "jvp",
    "leaky_relu",
    "logsumexp",
    "norm",
    "primal",
    "product",
    "register",
    "relu",
    "sigmoid",
    "softmax",
    "softplus",
    "value_and_grad",
    "vjp",
    "optim",
    "nn",
    "data",
]
