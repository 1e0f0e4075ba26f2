"""`adkit compare`, `adkit trace` and `adkit paths`: output, JSON and exit codes.

Most cases run `adkit.cli.main([...])` in-process; a few run the real command
(`python -m adkit`) to check exit codes, streams and that no traceback ever shows.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from adkit.cli import main

FAST = ["--engines", "forward,reverse,symbolic,paths"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out), err


# --- compare ---------------------------------------------------------------------------------


def test_compare_table(capsys):
    code, out, err = run(capsys, "compare", "sin(x*y) + x", "--at", "x=1", "--at", "y=2", *FAST)
    assert code == 0, err
    assert "f(x, y) = sin(x*y) + x" in out
    for engine in ("forward", "reverse", "symbolic", "paths"):
        assert engine in out
    assert "reference: symbolic, exact" in out


def test_compare_json(capsys):
    data, _ = run_json(capsys, "compare", "sin(x*y) + x", "--at", "x=1,y=2", *FAST)
    assert data["variables"] == ["x", "y"]
    assert data["inputs"] == ["x", "y"]
    assert data["point"] == {"x": 1, "y": 2}
    expected = [2 * math.cos(2) + 1, math.cos(2)]
    assert data["reference"] == pytest.approx(expected)
    assert [e["engine"] for e in data["engines"]] == ["forward", "reverse", "symbolic", "paths"]
    for row in data["engines"]:
        assert row["error"] is None
        assert row["gradient"] == pytest.approx(expected, rel=1e-12)


def test_compare_fractions_give_an_exact_reference(capsys):
    data, _ = run_json(capsys, "compare", "x**2 * y", "--at", "x=1/3", "--at", "y=-2", "--engines", "forward,reverse")
    assert data["point"] == {"x": "1/3", "y": -2}
    assert data["reference_kind"] == "symbolic, exact"
    assert data["reference"] == pytest.approx([2 * (1 / 3) * -2, 1 / 9])
    assert all(row["error"] is None for row in data["engines"])


def test_compare_default_engines_and_warnings_on_stderr(capsys):
    # every engine by default; log(-1) is nan, so every engine refuses (f has no derivative
    # there: right or refused) and the command says so with exit 1; the JSON stays valid
    code, out, err = run(capsys, "compare", "log(x) + x", "--at", "x=-1", "--json")
    data = json.loads(out)
    assert code == 1 and "every engine failed" in err
    assert [e["engine"] for e in data["engines"]] == ["forward", "reverse", "symbolic", "numeric", "paths"]
    assert all(e["gradient"] is None and e["error"] for e in data["engines"]), data["engines"]
    assert data["value"] == "nan"


# --- trace -----------------------------------------------------------------------------------


def test_trace_tables(capsys):
    # inputs numbered in the --at order: Rabbany's trace a1 = w0, a2 = w1, a3 = x (SEEDS §5)
    code, out, err = run(
        capsys, "trace", "cos(w1*x + w0)", "--at", "w0=0.5", "--at", "w1=2", "--at", "x=3", "--seed", "w1"
    )
    assert code == 0, err
    assert "forward evaluation trace" in out
    assert "a1 = w0" in out and "a4 = a2 * a3" in out and "a5 = a4 + a1" in out
    assert "tangent trace (forward mode), seed dw1 = 1" in out
    assert "adjoint trace (reverse mode)" in out
    assert "a6bar = 1 (seed)" in out
    assert f"df/dw1 = {-3 * math.sin(6.5):.10g}" in out


def test_trace_seed_dot_and_json(capsys, tmp_path):
    dot = tmp_path / "graph.dot"
    data, err = run_json(capsys, "trace", "(a + b) * (b + 1)", "--at", "a=2,b=1", "--seed", "b", "--dot", str(dot))
    assert data["seed"] == "b"
    assert data["value"] == 6.0
    assert data["gradient"] == {"a": 2.0, "b": 5.0}
    assert data["evaluation"]["columns"] == ["node", "definition", "value"]
    assert [row[0] for row in data["evaluation"]["rows"]] == ["a1", "a2", "a3", "a4", "a5"]
    assert "seed db = 1" in data["tangent"]["title"]
    assert data["tangent"]["rows"][-1][-1] == "5"  # d e / d b = 5 on the last tangent row
    assert data["adjoint"]["rows"][-1][-1] == "2"  # abar for a = 2
    text = dot.read_text()
    assert text.startswith("digraph adkit {") and "n0 -> n2" in text
    assert "wrote the graph" in err


def test_trace_unwritable_dot_file(capsys, tmp_path):
    code, out, err = run(capsys, "trace", "x*y", "--at", "x=1,y=2", "--dot", str(tmp_path / "no" / "dir.dot"))
    assert code == 1
    assert "cannot write the DOT file" in err


def test_trace_not_differentiable_point_still_prints_the_traces(capsys):
    code, out, err = run(capsys, "trace", "sqrt(x) * y", "--at", "x=0,y=1")
    assert code == 0
    assert "adjoint trace" in out and "inf" in out
    assert "NonFiniteDerivativeError" in err


# --- paths -----------------------------------------------------------------------------------


def test_paths_table(capsys):
    code, out, err = run(capsys, "paths", "cos(w**2) + sin(w**2)", "--at", "w=1.5")
    assert code == 0, err
    assert "2 paths" in out
    assert "heaviest" in out
    assert "w -> a2 (pow) -> a3 (cos) -> a6 (add)" in out


def test_paths_json(capsys):
    data, _ = run_json(capsys, "paths", "(a + b) * (b + 1)", "--at", "a=2,b=1", "--top", "2")
    assert data["paths"] == {"a": 1, "b": 2}
    assert data["total_paths"] == 3
    assert data["gradient"] == pytest.approx({"a": 2.0, "b": 5.0})
    assert data["reverse_gradient"] == pytest.approx({"a": 2.0, "b": 5.0})
    assert len(data["heaviest"]) == 2
    products = [p["product"] for p in data["heaviest"]]
    assert products == pytest.approx([3.0, 2.0])  # b -> (a+b) -> out: 1*3; then 1*2 twice
    assert data["heaviest"][0]["nodes"][0] == "b"


def test_paths_top_zero(capsys):
    data, _ = run_json(capsys, "paths", "x*x", "--at", "x=3", "--top", "0")
    assert data["heaviest"] == []
    assert data["gradient"] == {"x": 6.0}


def test_paths_over_budget_is_refused_with_exit_1(capsys):
    code, out, err = run(capsys, "paths", "x*x*x*x", "--at", "x=2", "--budget", "3")
    assert code == 1
    assert out == ""
    assert "would enumerate 4 paths" in err and "--budget" in err


# --- usage errors: exit code 2 and a message -------------------------------------------------

USAGE = [
    (["compare", "x.__class__", "--at", "x=1"], "attribute access '.__class__' is not allowed (column 3)"),
    (["compare", "__import__('os')", "--at", "x=1"], "names may not start with '_'"),
    (["trace", "open('f')", "--at", "x=1"], "unknown function 'open'"),
    (["paths", "x % 2", "--at", "x=1"], "operator '%'"),
    (["compare", "x + y", "--at", "x=1"], "no value for y: add --at y=NUMBER"),
    (["compare", "x + y"], "no value for x, y"),
    (["compare", "x", "--at", "x=1", "--at", "z=2"], "no variable 'z'"),
    (["compare", "x", "--at", "x=1", "--at", "x=2"], "more than once"),
    (["compare", "x", "--at", "x=abc"], "not a number"),
    (["compare", "x", "--at", "x"], "expected NAME=NUMBER"),
    (["compare", "x", "--at", "x=1/0"], "division by zero"),
    (["compare", "x", "--at", "x=1e999"], "too large"),
    (["compare", "x", "--at", "x=nan"], "not a number"),
    (["compare", "x", "--at", "x=1", "--engines", "forward,warp"], "unknown engine(s) warp"),
    (["compare", "1 + 2"], "no variables"),
    (["trace", "x*y", "--at", "x=1,y=2", "--seed", "z"], "--seed z"),
    (["paths", "x" * 3000, "--at", "x=1"], "limit is 2,000"),
]


@pytest.mark.parametrize("argv, message", USAGE)
def test_usage_errors_exit_2_with_a_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err
    assert err.startswith(f"adkit {argv[0]}: error: ")


@pytest.mark.parametrize(
    "argv",
    [["paths", "x", "--at", "x=1", "--top", "-1"], ["paths", "x", "--at", "x=1", "--budget", "0"], ["trace"]],
)
def test_argparse_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compare", "trace", "paths"])
def test_help_has_examples(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"adkit {command} " in out
    assert "--json" in out and "exit codes" in out


def test_internal_errors_are_one_line_exit_1(capsys, monkeypatch):
    import adkit

    def broken(*args, **kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr(adkit, "compare", broken)
    code, out, err = run(capsys, "compare", "x", "--at", "x=1")
    assert code == 1
    assert err.strip() == "adkit compare: internal error: RuntimeError: something broke"


# --- the real command --------------------------------------------------------------------------


def command(*argv):
    proc = subprocess.run(
        [sys.executable, "-m", "adkit", *argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def test_command_json_on_stdout():
    proc = command("compare", "x*y + sin(x)", "--at", "x=0.5", "--at", "y=2", "--engines", "reverse", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["engines"][0]["gradient"] == pytest.approx([2 + math.cos(0.5), 0.5])


def test_command_exit_codes():
    bad = command("trace", "().__class__.__bases__", "--at", "x=1")
    assert bad.returncode == 2
    assert "attribute access" in bad.stderr and bad.stdout == ""
    refused = command("paths", "x*x*x", "--at", "x=2", "--budget", "2", "--json")
    assert refused.returncode == 1
    assert "budget" in refused.stderr and refused.stdout == ""
    usage = command("paths", "x", "--top", "many")
    assert usage.returncode == 2 and "--top" in usage.stderr
    ok = command("paths", "x*y", "--at", "x=1,y=2")
    assert ok.returncode == 0 and "heaviest" in ok.stdout


def test_compare_exits_1_when_every_engine_fails(capsys):
    code, out, err = run(capsys, "compare", "sqrt(x)", "--at", "x=0", "--engines", "forward,reverse")
    assert code == 1
    assert "NonFiniteDerivativeError" in out  # the table shows why
    assert "every engine failed" in err
