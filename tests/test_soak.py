"""The stop/resume soak, briefly: random stops of every kind at random moments, then resume until
done; every promise checked against an uninterrupted run (tests/soak.py; bench/soak.py runs it
for thousands of stops)."""
from __future__ import annotations

import pytest

import soak


@pytest.mark.soak
@pytest.mark.parametrize("workers", [1, 2])
def test_random_stops_then_resume_keep_every_promise(tmp_path, workers):
    stats = soak.run(tmp_path, stops=12, per_session=6, seed=20261122 + workers, say=lambda _: None, workers=workers)
    assert sum(stats.stops.values()) >= 12 and stats.sessions >= 2, stats.table()
    assert stats.violations == [], "\n".join(stats.violations) + "\n" + stats.table()
