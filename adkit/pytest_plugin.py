"""What the ``grad_check`` pytest fixture hands to a test (see ``adkit_pytest``, the plugin
module pytest loads through the ``pytest11`` entry point; it stays light and imports this
module only when a test uses the fixture).

Without the plugin (``-p no:adkit``, or PYTEST_DISABLE_PLUGIN_AUTOLOAD), the same checks
are one import away: ``from adkit import assert_grad``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adkit.check import GradCheckReport, TaylorResult, check_grad, taylor_test


class GradChecker:
    """Call it to assert a gradient; every report is kept in ``.reports``."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        self.reports: list[GradCheckReport] = []

    def __call__(self, f: Callable[..., Any], params: Any, grad: Any = None, **options: Any) -> GradCheckReport:
        """check_grad(f, params, grad, ...); AssertionError with the report unless it PASSED
        (an INCONCLUSIVE check fails the test too, its reasons first)."""
        __tracebackhide__ = True
        report = self.report(f, params, grad, **options)
        if not report.ok:
            raise AssertionError(str(report))
        return report

    def report(self, f: Callable[..., Any], params: Any, grad: Any = None, **options: Any) -> GradCheckReport:
        """The report of check_grad with this test's options, without asserting."""
        __tracebackhide__ = True
        merged = {**self.options, **options}
        merged.setdefault("warn", True)
        report = check_grad(f, params, grad, **merged)
        self.reports.append(report)
        return report

    def taylor(self, f: Callable[..., Any], x: Any, grad: Any = None, **options: Any) -> TaylorResult:
        """taylor_test(f, x, grad, ...); AssertionError with its table unless every direction's rate is ~2."""
        __tracebackhide__ = True
        if "seed" in self.options:
            options.setdefault("seed", self.options["seed"])
        result = taylor_test(f, x, grad, **options)
        if not result.ok:
            raise AssertionError(str(result))
        return result


__all__ = ["GradChecker"]
