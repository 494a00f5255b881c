import json

import numpy as np
import pytest

from mcc import presets
from mcc.cli import main


def top1_of_scores(run) -> float:
    """Top-1 (%) recomputed from an evaluation run's saved test-set class scores."""
    z = np.load(run / "scores.npz")
    return 100.0 * float(np.mean(z["scores"].argmax(1) == z["labels"]))


def test_demo_runs_the_whole_path(tiny_data, tmp_path, capsys):
    """The quick start's path (pretrain, kNN and fine-tune from MCC and scratch) with the
    tiny preset on an already prepared tiny set (the demo prepares one only when missing)."""
    data, out = tiny_data, tmp_path / "runs"
    args = ["demo", "--data", str(data), "--out", str(out), "--preset", "tiny", "--no-progress"]
    code = main(args)
    assert code == 0
    rows = json.loads((out / "summary.json").read_text())
    assert [(p, n) for p, n, _ in rows] == [
        ("knn", "MCC"),
        ("knn", "scratch"),
        ("finetune", "MCC"),
        ("finetune", "scratch"),
    ]
    # each row is its own run's score on the 16 test samples, as its saved class scores give
    # it, started from the demo's pretraining (MCC) or from nothing (scratch)
    ckpt = str(out / "pretrain" / "checkpoint.pt")
    for protocol, name, top1 in rows:
        run = out / f"{protocol}-{name.lower()}"
        assert json.loads((run / "result.json").read_text())["test_samples"] == 16
        assert top1 == pytest.approx(top1_of_scores(run))
        start = json.loads((run / "config.json").read_text())["checkpoint"]
        assert start == (ckpt if name == "MCC" else None)
    assert "runs in" in capsys.readouterr().out
    # a second call reuses the dataset and the finished pretraining
    stamp = (out / "pretrain" / "checkpoint.pt").stat().st_mtime
    assert main(args) == 0
    assert (out / "pretrain" / "checkpoint.pt").stat().st_mtime == stamp


@pytest.mark.parametrize(
    "command, table, default",
    [("pretrain", presets.PRETRAIN, "paper"), ("evaluate", presets.EVALUATE, "paper"),
     ("demo", presets.PRETRAIN, "demo")],
)  # fmt: skip
def test_help_lists_the_presets_and_config_keys(capsys, command, table, default):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps at the terminal width
    assert "{" + ",".join(sorted(table)) + "}" in text
    assert "--set KEY=VALUE dotted config override" in text and "--no-progress" in text
    if command != "demo":
        assert "config keys: data.path" in text and "loss.tau" in text
        assert ("label_fraction" in text) == (command == "evaluate")
