"""adkit's pytest plugin (entry point ``pytest11: adkit``): the ``grad_check`` fixture.

pytest imports this module in every test run of every project that has adkit installed,
so it imports nothing but pytest itself: numpy and adkit are loaded only when a test
asks for the fixture. It lives outside the ``adkit`` package on purpose: importing any
``adkit.*`` module first runs ``adkit/__init__.py``, which loads numpy and every engine.
The fixture's implementation is ``adkit.pytest_plugin.GradChecker``.

    def test_loss_gradient(grad_check):
        grad_check(loss, params, loss_grad)        # AssertionError with the report if wrong

Options: ``@pytest.mark.grad_check(sample=20, method="richardson")`` sets check_grad
options for one test (or a class / module via pytestmark); ``--adkit-seed N`` changes the
seed of every check (to sample other entries and directions).
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("adkit", "adkit gradient checks")
    group.addoption(
        "--adkit-seed",
        dest="adkit_seed",
        type=int,
        default=None,
        help="seed of every grad_check in this run (default: 0, or the test's own): other entries, other directions",
    )


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "grad_check(**options): check_grad options for the grad_check fixture in this test "
        "(e.g. sample=20, method='richardson', mode='projection', threshold=1e-5)",
    )


@pytest.fixture
def grad_check(request: Any) -> Any:
    """Assert a gradient: ``grad_check(f, params, grad=None, **check_grad_options)``.

    Raises AssertionError whose message is adkit's report (verdict and reasons, worst
    entries, diagnosis, hints) when the check FAILED or is INCONCLUSIVE (f mutates its
    argument, f too noisy, finite differences that cannot decide); returns the report when
    it PASSED. Also ``grad_check.report(...)``
    (the report, no assertion) and ``grad_check.taylor(f, x, grad)`` (Taylor test).
    """
    from adkit.pytest_plugin import GradChecker

    options: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("grad_check"))):  # the closest marker wins
        options.update(mark.kwargs)
    seed = request.config.getoption("adkit_seed", default=None)
    if seed is not None:
        options["seed"] = seed
    return GradChecker(options)
