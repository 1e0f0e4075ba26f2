"""scripts/bench_core.py (the speed report of issue 2) still runs: tiny cells, short timings.

Timings are not asserted (they are the report's business, not a test's); what is asserted
is that every section runs and that the gradients it times pass its own correctness checks.
"""

import sys

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def bench_core():
    yield load_script("bench_core")
    del sys.modules["bench_core"]


def test_scalar_graph_section_checks_its_gradients(bench_core, capsys):
    rows = bench_core.bench_scalar_graph((2, 8), (4,), min_time=0.001, repeats=1)
    assert [r["verdict"] for r in rows if "gradient check" in r["verdict"]] == []
    assert all(r["check_err"] <= bench_core.CHECK_RTOL for r in rows)
    assert "SUMMARY scalar graph" in capsys.readouterr().out


def test_mlp_section_checks_its_gradient(bench_core, capsys):
    result = bench_core.bench_mlp(min_time=0.001, repeats=1)
    out = capsys.readouterr().out
    assert "gradient check" not in result["verdict"]
    # a smoke test of the section, not a timing: the ratio is reported, finite and positive
    assert "max abs difference" in out and 0 < result["ratio"] < float("inf")


def test_vectorised_and_others_sections_run(bench_core, capsys):
    rows = bench_core.bench_vectorised((2,), (4,), min_time=0.001, repeats=1)
    assert rows and 0 < rows[0]["ratio"] < float("inf")  # reported, not timed (benchmarks time)
    bench_core.bench_others([(2, 4)], min_time=0.001, repeats=1)
    assert "== 4. Other AD libraries" in capsys.readouterr().out
