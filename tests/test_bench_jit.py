"""scripts/bench_jit.py's --others: the peers' gradients are checked against adkit's before
they are timed, and a wrong one stops the report. Timings are not asserted."""

import sys

import numpy as np
import pytest
from conftest import load_script

import adkit as ad


@pytest.fixture(scope="module")
def bench_jit():
    yield load_script("bench_jit")
    del sys.modules["bench_jit"]


def test_nested_gradients_flatten_and_rebuild(bench_jit):
    tree = [(np.ones((2, 2)), np.zeros(2)), (np.arange(3.0), 1.5)]
    leaves = bench_jit._leaves(tree)
    assert [np.shape(v) for v in leaves] == [(2, 2), (2,), (3,), ()]
    rebuilt = bench_jit._rebuild(tree, [2 * v for v in leaves])
    assert isinstance(rebuilt, list) and isinstance(rebuilt[1], tuple)
    np.testing.assert_array_equal(rebuilt[1][0], [0.0, 2.0, 4.0])


def test_a_wrong_peer_gradient_stops_the_report(bench_jit):
    bench_jit._check("peer", [np.array([1.0, 2.0])], [np.array([1.0, 2.0])])
    with pytest.raises(SystemExit, match="peer's gradient differs"):
        bench_jit._check("peer", [np.array([1.0, 2.0 + 1e-9])], [np.array([1.0, 2.0])])


def test_others_on_the_chain_agree_with_adkit(bench_jit):
    """Where jax or torch is installed: their gradients of a short chain pass the report's
    check against adkit's (it raises SystemExit otherwise), and the line names them."""
    others = {name: pytest.importorskip(name) for name in ("jax", "torch")}
    jax = others["jax"]
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:

        def program(m):
            return lambda x: m.sum(m.tanh(x) * 0.9 + m.sin(x) * 0.1)

        x = np.linspace(0.5, 1.5, 10)
        line = bench_jit._others_line(others, program, (x,), ad.grad(program(np))(x), 1e-6)
    finally:
        jax.config.update("jax_enable_x64", before)
    assert "jax jit(grad)" in line and "torch autograd" in line
