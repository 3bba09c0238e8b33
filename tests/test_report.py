"""Recorded numbers: target parsing, the met flag, and the JSON lines the runner collects."""

import json

import pytest

from coursekit import report


@pytest.mark.parametrize(
    "value, target, expected",
    [
        (2.0, "<= 2.10", True),
        (2.2, "<= 2.10", False),
        (0.96, ">= 0.95", True),
        (3, "< 3", False),
        (1e-3, "> 0", True),
        (float("nan"), "<= 1", False),
        (5.0, None, None),
    ],
)
def test_met(value, target, expected):
    assert report.met(value, target) is expected


@pytest.mark.parametrize("bad", ["2.10", "=< 2", "<= two", "≤ 2.1", ""])
def test_malformed_target_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="write it like '<= 2.10'"):
        report.met(1.0, bad)


def test_record_prints_and_appends_json(tmp_path, monkeypatch, capsys):
    path = tmp_path / "r.jsonl"
    monkeypatch.setenv("COURSEKIT_RESULTS", str(path))
    monkeypatch.setenv("COURSEKIT_LECTURE", "99_demo")
    monkeypatch.setenv("COURSEKIT_PROFILE", "cpu")
    report.record("test_bpd", 2.05, target="<= 2.10")
    report.record("fcd", 3.0)
    out = capsys.readouterr().out
    assert "test_bpd = 2.05   (target <= 2.10  ✓ met)" in out
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {
        "lecture": "99_demo",
        "name": "test_bpd",
        "value": 2.05,
        "target": "<= 2.10",
        "met": True,
        "profile": "cpu",
        "device": rows[0]["device"],
    }
    assert rows[1]["target"] is None and rows[1]["met"] is None
