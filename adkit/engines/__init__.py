"""The five engines. Forward and reverse mode are called by adkit.transforms directly; the
others register a `(f, args, argnums, single) -> (value, gradients)` function here."""

from collections.abc import Callable
from typing import Any

ENGINES = ("forward", "reverse", "symbolic", "numeric", "paths")
GRAD_ENGINES: dict[str, Callable[..., Any]] = {}
