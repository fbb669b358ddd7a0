"""The what-if benchmark runs end to end on a small model and reports sizes and times per answer."""

from __future__ import annotations

import json

from bench.whatif import Config, run

TINY = Config(territories=400, answers=20, full_answers=5, warmup=2)


def test_the_whatif_benchmark_measures_bounded_and_full_answers(tmp_path):
    out = tmp_path / "whatif.json"
    result = run(TINY, out, echo=False)
    assert json.loads(out.read_text(encoding="utf-8")) == result
    assert result["territories"] == 400
    summary, full = result["summary"], result["full"]
    assert summary["answers"] == 20 and full["answers"] == 5
    assert summary["us_median"] > 0 and summary["bytes_median"] > 0
    # the server's time is measured inside the WSGI call: part of the time around the test client's call
    assert summary["client_us_median"] >= summary["us_median"]
    # the bounded trace is the smaller one: a country's product lines are all explained in full only
    assert full["candidates_max"] > summary["candidates_max"]
    assert summary["bytes_max"] < 4096
