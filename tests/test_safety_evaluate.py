"""`python -m bot.safety.evaluate`: figures, misses, predictions file and targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.safety.evaluate import main

ROWS = [
    {"text": "I want to kill myself", "crisis": True, "cat": "explicit"},
    {"text": "i have been cutting again", "crisis": True, "cat": "self_harm"},
    {"text": "everything feels grey lately", "crisis": True, "cat": "passive"},
    {"text": "this traffic is killing me", "crisis": False, "cat": "hyperbole"},
    {"text": "what are your hours?", "crisis": False, "cat": "faq"},
]


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in ROWS) + "\n")
    return path


def test_prints_figures_misses_and_writes_predictions(labelled: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "predictions.jsonl"
    assert main([str(labelled), "--patterns-only", "--predictions", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recall                 66.7%  (2/3)" in printed
    assert "false-positive rate     0.0%  (0/2)" in printed
    assert "[passive] everything feels grey lately" in printed
    assert "TARGET MISSED: overall recall 66.7% is below 95%" in printed
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    assert predictions == [{"text": r["text"], "crisis": r["crisis"] and r["cat"] != "passive"}
                           for r in ROWS]


def test_check_fails_below_target(labelled: Path) -> None:
    assert main([str(labelled), "--patterns-only", "--check"]) == 1
    assert main([str(labelled), "--patterns-only"]) == 0


def test_full_recall_categories_are_checked(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "plan.jsonl"
    rows = [{"text": "I feel a bit odd about the weekend", "crisis": True, "cat": "plan"}]
    rows += [{"text": f"I want to kill myself {i}", "crisis": True, "cat": "explicit"}
             for i in range(30)]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    assert main([str(path), "--patterns-only", "--check"]) == 1
    assert "recall on plan is 0/1; the target is 100%" in capsys.readouterr().out


@pytest.mark.parametrize("content", ["not json\n", '{"text": "x"}\n', '["a"]\n'])
def test_bad_input_exits_2(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main([str(path), "--patterns-only"]) == 2


def test_missing_model_exits_2(labelled: Path, tmp_path: Path) -> None:
    assert main([str(labelled), "--model", str(tmp_path / "none.tar.gz")]) == 2
