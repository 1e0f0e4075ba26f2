"""scipy.special for traced values, like jax.scipy.special or autograd.scipy.special.

scipy.special's ufuncs (erf, gammaln, digamma, jv, ...) already work on traced values
through numpy's ufunc protocol; they are re-exported here unchanged. Its few plain
Python functions convert their input with np.asarray, which a traced value refuses (it
would drop the derivative); this module has drop-in counterparts taking the same
arguments: `logsumexp` (with `b=`, `axis`, `keepdims`, `return_sign`), `softmax`,
`log_softmax`, `polygamma` and `multigammaln`. They work on plain arrays too.

    import adkit.scipy.special as sc      # instead of: import scipy.special as sc
    ad.grad(lambda x: sc.logsumexp(x, b=w) + sc.erf(x).sum())(x)

Importing this module does not import scipy; the first attribute that is not defined here
does (and then it is scipy.special's own).
"""

from __future__ import annotations

from typing import Any

from adkit.ops.special import log_softmax, logsumexp, multigammaln, polygamma, scipy_special, softmax


def __getattr__(name: str) -> Any:
    return getattr(scipy_special(), name)


__all__ = ["log_softmax", "logsumexp", "multigammaln", "polygamma", "softmax"]
