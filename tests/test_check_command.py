"""`adkit check`: the new options (--fd-dtype, --method, --mode), the three-valued verdict's
exit codes, and "at least" when the bisection stopped early. Run in-process through
adkit.cli.main (a subprocess per case would cost a second each); the user's module is
written to a temporary directory and imported from there, as the command does.

The gradients are hand-written closed forms: d/dx sum(sin(x) x) = cos(x) x + sin(x).
"""

import json
import sys

import pytest

from adkit.cli import main

USER_MODULE = """
import numpy as np

def loss(x):
    return np.sum(np.sin(x) * x)

def loss_grad(x):
    return np.cos(x) * x + np.sin(x)

def wrong_in_30(x):  # 30 entries, every 50th, lose their sin(x) term
    g = np.cos(x) * x + np.sin(x)
    g[::50][:30] -= np.sin(x[::50][:30])
    return g

def mutating_loss(x):
    x *= 2.0
    return np.sum(np.sin(x) * x)

def mutating_right_grad(x):  # right for f on copies: d/dx sum(sin(2x) 2x)
    return 2 * (np.cos(2 * x) * 2 * x + np.sin(2 * x))
"""


@pytest.fixture
def run(tmp_path, monkeypatch, capsys, request):
    name = f"usermod_{request.node.name.split('[')[0]}"  # a fresh module name per test
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield lambda *argv: (main(["check", *(a.replace("usermod", name) for a in argv)]), capsys.readouterr())
    sys.modules.pop(name, None)


def test_fd_dtype_evaluates_the_differences_in_float64(run):
    code, out = run("usermod:loss", "--grad", "usermod:loss_grad", "--shape", "6", "--dtype", "float32")
    assert code == 0 and "threshold 1.0e-03" in out.out and "fd_dtype='float64'" in out.err
    code, out = run(
        "usermod:loss", "--grad", "usermod:loss_grad", "--shape", "6", "--dtype", "float32", "--fd-dtype", "float64"
    )
    assert code == 0 and "threshold 1.0e-04" in out.out and "inputs in float64" in out.out, out


@pytest.mark.parametrize(
    "method, described",
    [
        ("forward", "forward differences"),
        ("richardson", "Richardson extrapolation"),
        ("complex", "complex step"),
    ],
)
def test_method_reaches_check_grad(run, method, described):
    code, out = run("usermod:loss", "--grad", "usermod:loss_grad", "--shape", "4", "--method", method)
    assert code == 0 and described in out.out and "gradient check PASSED" in out.out, out


def test_mode_projection_names_at_least_10_when_the_bisection_stops(run):
    code, out = run("usermod:loss", "--grad", "usermod:wrong_in_30", "--shape", "2000", "--mode", "projection")
    assert code == 1 and "gradient check FAILED" in out.out
    assert "names at least 10 wrong entries (it stops at that many)" in out.out, out.out
    # the named entries are truly wrong ones: multiples of 50 below 1500
    named = [
        e["index"][0]
        for e in json.loads(
            run("usermod:loss", "--grad", "usermod:wrong_in_30", "--shape", "2000", "--mode", "projection", "--json")[
                1
            ].out
        )["failures"]
        if "index" in e and e["index"]
    ]
    assert len(named) == 10 and all(i % 50 == 0 and i < 1500 for i in named), named


def test_a_sampled_check_says_at_least(run):
    code, out = run(
        "usermod:loss", "--grad", "usermod:wrong_in_30", "--shape", "2000", "--sample", "400", "--seed", "1"
    )
    headline = out.out.splitlines()[1]
    assert code == 1 and headline.startswith("gradient check FAILED: ")
    n_failed = int(headline.split(": ")[1].split(" of ")[0])
    assert 0 < n_failed <= 30 and f"(a sample of 2000: at least {n_failed} wrong)" in headline, headline


def test_an_inconclusive_check_exits_1_and_says_why(run):
    code, out = run("usermod:mutating_loss", "--grad", "usermod:mutating_right_grad", "--shape", "4")
    assert code == 1 and out.out.splitlines()[1].startswith("gradient check INCONCLUSIVE: f modifies its argument")
    code, out = run("usermod:mutating_loss", "--grad", "usermod:mutating_right_grad", "--shape", "4", "--json")
    data = json.loads(out.out)
    assert code == 1 and data["verdict"] == "INCONCLUSIVE" and data["ok"] is False
    assert any("in place" in r for r in data["reasons"])


def test_bad_option_values_exit_2(run):
    with pytest.raises(SystemExit) as info:
        run("usermod:loss", "--shape", "3", "--fd-dtype", "float128")
    assert info.value.code == 2
