"""THE op registry: every primitive defined exactly once.

`REGISTRY` maps names to `Op` entries; `NUMPY_NAMES` maps numpy callables to them.
Engines read these entries; this package imports no engine.

Registering a custom op (every engine and the registry-wide tests pick it up)::

    import numpy as np
    from adkit.ops import Op, register
    from adkit.ops.elementwise import domain, uniform

    cube = register(Op("cube", lambda x: x**3, scalar="x * x * x",
                       partials=("3.0 * x * x",),          # d out / d x, with registry ops
                       sympy=lambda sp, x: x**3,           # for the symbolic engine
                       domain=domain(uniform(-2.0, 2.0))))  # where tests sample it
    cube(2.0)            # 8.0; differentiable by every engine
"""

from adkit.ops import array, conv, einsum, elementwise, elementwise_more, fft, linalg, special  # noqa: F401 (registers numpy extras and scipy.special ops)
from adkit.ops.core import NUMPY_NAMES, REGISTRY, Op, Trace, Tracer, bind, compile_all, primal, register, unregister

for _name in elementwise.COMPLEX_SAFE:
    REGISTRY[_name].complex_ok = True
compile_all()

__all__ = [
    "NUMPY_NAMES",
    "REGISTRY",
    "Op",
    "Trace",
    "Tracer",
    "bind",
    "primal",
    "register",
    "unregister",
    "array",
    "conv",
    "einsum",
    "elementwise",
    "fft",
    "linalg",
]
