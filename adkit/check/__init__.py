"""Gradient checking of any callable: check_grad, assert_grad, taylor_test, check_every.

The question a checker answers: is the gradient someone wrote (by hand, or got from any
framework) right for this numpy function? The answer must be one to trust, in both
directions: no false alarms from finite-difference noise, float32 or kinks, and no false
pass when f is noisy, mutates its input, or the finite differences cannot decide. So the
verdict has three values: PASSED (the evidence supports the gradient), FAILED (evidence
that it is wrong) and INCONCLUSIVE (with the reasons); report.ok is True only for PASSED.

The parts, one file each:
  params.py    the parameters' names, the analytic gradient matched to them (structure, shapes)
  evidence.py  f probed (copies, determinism, noise, working precision), finite differences
  sampling.py  which entries are checked: all, a seeded sample, or projections with bisection
  verdict.py   each entry and the whole check judged; the diagnosis of what a mistake looks like
  report.py    GradCheckReport: text, HTML, JSON; warnings pointing at the user's line
  checker.py   check_grad and assert_grad, putting the parts together
  periodic.py  check_every: checks during training
  taylor.py    taylor_test: convergence rates along several random directions
  command.py   `adkit check MODULE:FUNC`
"""

from adkit.check.checker import assert_grad, check_grad
from adkit.check.params import leaf_names
from adkit.check.periodic import PeriodicGradCheck, check_every
from adkit.check.report import EntryResult, GradCheckReport, GradCheckWarning
from adkit.check.taylor import TaylorDirection, TaylorResult, taylor_test
from adkit.check.verdict import FAILED, INCONCLUSIVE, PASSED

__all__ = [
    "FAILED",
    "INCONCLUSIVE",
    "PASSED",
    "EntryResult",
    "GradCheckReport",
    "GradCheckWarning",
    "PeriodicGradCheck",
    "TaylorDirection",
    "TaylorResult",
    "assert_grad",
    "check_every",
    "check_grad",
    "leaf_names",
    "taylor_test",
]
