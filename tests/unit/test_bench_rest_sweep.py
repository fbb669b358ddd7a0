"""The REST benchmark's climb: x1.5 steps until one fails, then two steps between the last rate that
held and the first that failed, so a case's capacity is not left on a coarse grid."""

from __future__ import annotations

import asyncio

import pytest

from bench import rest


def _step(rate: float, seconds: float, limit: float) -> rest.Step:
    n = int(rate * seconds)
    answered = n if rate <= limit else int(0.9 * n)  # past the limit, a tenth is not answered
    step = rest.Step(rate, n, answered, 0, answered / seconds, 1.0, 1.0, 1.0, 1.0, 0.1)
    step.held = answered >= 0.95 * n
    return step


def _no_job(_i: int) -> rest.Job:
    raise AssertionError("the steps are simulated: no job is made")


@pytest.mark.parametrize("limit", [400.0, 130.0])
def test_the_climb_narrows_the_gap_between_the_last_held_and_the_first_failed_rate(monkeypatch, limit):
    rates: list[float] = []

    async def run_step(pool, job_for, rate, seconds, master):
        rates.append(rate)
        return _step(rate, seconds, limit)

    async def drain(pool, limit_s=60.0):
        return None

    monkeypatch.setattr(rest, "run_step", run_step)
    monkeypatch.setattr(rest, "_drain", drain)
    result = asyncio.run(rest.sweep("case", "requests/s", None, _no_job, 100.0, 0, first_rate=100.0))

    climb = [100.0 * rest.STEP**k for k in range(len(rates) - rest.REFINE)]
    assert rates[: len(climb)] == pytest.approx(climb)
    held = max(r for r in climb if r <= limit)
    failed = min(r for r in climb if r > limit)
    first = (held * failed) ** 0.5
    assert rates[len(climb)] == pytest.approx(first)
    second = (first * failed) ** 0.5 if first <= limit else (held * first) ** 0.5
    assert rates[len(climb) + 1] == pytest.approx(second)
    assert result.capacity == pytest.approx(max(int(r * 100) / 100 for r in rates if r <= limit))
    assert result.capacity > held  # the refinement found a higher rate that held
