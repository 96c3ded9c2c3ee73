"""`make bench` judges each figure against its goal and sums up: the goal texts it parses."""

from __future__ import annotations

import importlib
import re

import pytest

bench = importlib.import_module("bench.__main__")


@pytest.mark.parametrize(("goal", "values", "expected"), [
    ("≤ 1.10", (1.1, ), "holds"),
    ("≤ 1.10", (1.1004,), "holds"),  # compared as printed: 1.100
    ("≤ 1.10", (1.15,), "misses"),
    ("≥ 0.95", (0.979,), "holds"),
    ("≥ 0.95, 0 throttled", (0.979, 0), "holds"),
    ("≥ 0.95, 0 throttled", (0.979, 3), "misses"),
    ("≤ 3 / ≤ 4", (2, 4), "holds"),
    ("≤ 3 / ≤ 4", (2, 5), "misses"),
    ("≤ 15", (None,), None),  # not measured
    ("(info)", (1.2,), None),
])
def test_a_goal_holds_or_misses(goal, values, expected):
    assert bench.verdict(goal, values) == expected


def test_a_goal_and_its_values_must_agree():
    with pytest.raises(ValueError, match="2 part"):
        bench.verdict("≤ 3 / ≤ 4", (2,))


def test_the_summary_names_what_missed_and_what_was_not_measured(monkeypatch, capsys):
    monkeypatch.setattr(bench, "rows", [])
    bench.report("fast", 0.5, "", "≤ 1.10")
    bench.report("slow", 1.5, "", "≤ 1.10")
    bench.report("absent", None, "server not running", "≥ 0.5")
    bench.report("extra", 2.0, "", "(info)")
    printed = capsys.readouterr().out.splitlines()
    states = [re.findall(r" (holds|misses|not measured|\(info\)) ", line)[-1] for line in printed]
    assert states == ["holds", "misses", "not measured", "(info)"]
    assert bench.summary() == "summary: 1 of 3 goals hold, 1 missed: slow, 1 not measured (absent), 1 informative"
