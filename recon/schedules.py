"""Learning-rate and SH-degree schedules as pure functions of the step.

Being stateless, they resume exactly: a run restarted from a checkpoint at step k computes the
same values at every later step as a run that never stopped.
"""

from __future__ import annotations


def exponential_decay(initial: float, final_factor: float, step: int, total_steps: int) -> float:
    """``initial`` decayed exponentially so that it reaches ``initial × final_factor`` at
    ``total_steps`` (gsplat's ExponentialLR with γ = final_factor^(1/total_steps))."""
    return initial * final_factor ** (min(step, total_steps) / max(total_steps, 1))


def active_sh_degree(step: int, interval: int, max_degree: int) -> int:
    """One more SH band every ``interval`` steps, up to ``max_degree`` (3DGS)."""
    return min(step // interval, max_degree)


__all__ = ["active_sh_degree", "exponential_decay"]
