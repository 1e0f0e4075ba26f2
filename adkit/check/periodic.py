"""Gradient checks during training: check_every(n) samples a few entries every n steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adkit.check.checker import check_grad
from adkit.check.report import GradCheckReport, warn_user


class PeriodicGradCheck:
    """Check a sample of gradient entries every `every` steps of a training loop.

    The lecture's advice: check the gradient "a few times during training" (a gradient
    can be right at initialisation and wrong once units saturate or cross kinks).

        check = adkit.check.check_every(100, sample=5)
        for step in range(steps):
            g = my_grad(params)
            check(step, loss, params, g)        # raises AssertionError on a wrong gradient
            params = update(params, g)

    Each check uses seed + step, so different entries are sampled each time. on_fail:
    "raise" (AssertionError with the report, on FAILED and on INCONCLUSIVE), "warn"
    (GradCheckWarning), or "record"
    (only kept in .history). .history holds (step, report) pairs.
    """

    def __init__(
        self, every: int = 100, *, sample: int | None = 5, seed: int = 0, on_fail: str = "raise", **check_kwargs: Any
    ) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if on_fail not in ("raise", "warn", "record"):
            raise ValueError(f"on_fail must be 'raise', 'warn' or 'record', got {on_fail!r}")
        self.every, self.sample, self.seed, self.on_fail = every, sample, seed, on_fail
        self.kwargs = check_kwargs
        self.history: list[tuple[int, GradCheckReport]] = []

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def __call__(
        self, step: int, f: Callable[..., Any], params: Any, grad: Any = None, **kwargs: Any
    ) -> GradCheckReport | None:
        __tracebackhide__ = True
        if not self.due(step):
            return None
        options = {**self.kwargs, **kwargs}
        options.setdefault("warn", False)
        report = check_grad(f, params, grad, sample=self.sample, seed=self.seed + step, **options)
        self.history.append((step, report))
        if not report.ok:
            message = f"gradient check at training step {step}: {report.verdict}\n{report}"
            if self.on_fail == "raise":
                raise AssertionError(message)
            if self.on_fail == "warn":
                warn_user(message)
        return report

    @property
    def ok(self) -> bool:
        return all(r.ok for _, r in self.history)


def check_every(every: int = 100, **kwargs: Any) -> PeriodicGradCheck:
    """A PeriodicGradCheck: call it with (step, f, params, grad) inside a training loop."""
    return PeriodicGradCheck(every, **kwargs)
