import json

from mcc.cli import main


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
    assert all(0 <= top1 <= 100 for _, _, top1 in rows)
    assert "runs in" in capsys.readouterr().out
    # a second call reuses the dataset and the finished pretraining
    assert main(args) == 0


def test_help_lists_config_keys(capsys):
    try:
        main(["pretrain", "--help"])
    except SystemExit as e:
        assert e.code == 0
    assert "loss.tau" in capsys.readouterr().out
