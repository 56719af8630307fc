"""Schedules: gsplat's exponential position-lr decay and the SH degree ramp."""

from __future__ import annotations

import math

import pytest

from recon.schedules import active_sh_degree, exponential_decay


def test_exponential_decay_matches_gsplat_gamma():
    # gsplat: ExponentialLR(gamma = 0.01 ** (1 / max_steps)), stepped once per step.
    gamma = 0.01 ** (1.0 / 30000)
    for step in (0, 1, 777, 15000, 30000):
        assert exponential_decay(1.6e-4, 0.01, step, 30000) == pytest.approx(
            1.6e-4 * gamma**step, rel=1e-12)
    assert exponential_decay(2.0, 0.01, 30000, 30000) == pytest.approx(0.02, rel=1e-12)
    assert exponential_decay(2.0, 0.01, 40000, 30000) == pytest.approx(0.02, rel=1e-12)


def test_decay_is_a_pure_function_of_the_step():
    # Resuming recomputes the value; it must not depend on the path taken to the step.
    assert exponential_decay(1.0, 0.01, 1234, 3000) == exponential_decay(1.0, 0.01, 1234, 3000)
    assert math.isclose(exponential_decay(1.0, 0.01, 1500, 3000), 0.1, rel_tol=1e-12)


def test_sh_degree_ramp():
    assert [active_sh_degree(s, 1000, 3) for s in (0, 999, 1000, 2999, 3000, 50000)] == \
        [0, 0, 1, 2, 3, 3]
    assert active_sh_degree(5000, 1000, 1) == 1
