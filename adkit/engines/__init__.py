"""The five engines. Forward and reverse mode are called by adkit.transforms directly; the
others register a `(f, args, argnums, single) -> (value, gradients)` function here."""

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ENGINES = ("forward", "reverse", "symbolic", "numeric", "paths")
GRAD_ENGINES: dict[str, Callable[..., Any]] = {}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a tape is recorded and swept: the collector's passes over
    millions of young tracers would cost more than the tape, and the tape's only cycle
    (nodes -> trace -> tape) is broken by `ReverseTrace.release()`.

    Used as a decorator on the functions that own a tape, so that their locals (the
    tape's last references) are gone before the collector runs again: otherwise its
    first pass would walk every node of a tape that is about to be freed anyway."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
