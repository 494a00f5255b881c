import json

import pytest
import torch

from mcc.checkpoint import CheckpointError
from mcc.config import EvalConfig, PretrainConfig, apply_overrides
from mcc.evaluate import accuracy, evaluate, knn_scores
from mcc.layouts import NTU25
from mcc.train import pretrain


def test_knn_of_a_separable_embedding_is_100_percent():
    train_y = torch.arange(5).repeat_interleave(4)
    train_f = torch.nn.functional.one_hot(train_y, 5).float() + 0.01 * torch.randn(20, 5)
    test_y = torch.arange(5)
    test_f = torch.eye(5)
    res = accuracy(knn_scores(train_f, train_y, test_f, k=3, num_classes=5), test_y, 5)
    assert res["top1"] == 100.0
    assert res["confusion"] == torch.eye(5, dtype=torch.long).tolist()


def test_accuracy_top5_and_per_class():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0]])
    res = accuracy(scores, torch.tensor([0, 1]), 3)
    assert res["top1"] == 50.0 and res["top5"] == 100.0
    assert res["per_class_top1"] == [100.0, 0.0, 0.0]


def _eval_cfg(data, **over):
    base = {
        "data.path": data,
        "model.width": "0.125",
        "optim.epochs": "1",
        "optim.batch_size": "8",
        "frames": "32",
        "threads": "1",
    }
    return apply_overrides(EvalConfig(), {**base, **over})


def test_knn_and_finetune_end_to_end_from_a_checkpoint(tiny_data, tmp_path):
    pre = apply_overrides(
        PretrainConfig(),
        {
            "data.path": tiny_data,
            "model.width": "0.125",
            "optim.batch_size": "8",
            "loss.queue_size": "16",
            "optim.epochs": "1",
            "threads": "1",
        },
    )
    pretrain(pre, tmp_path / "pre", progress=False)
    ckpt = str(tmp_path / "pre" / "checkpoint.pt")
    knn = evaluate(_eval_cfg(tiny_data, protocol="knn"), ckpt, tmp_path / "knn", progress=False)
    assert 0 <= knn["top1"] <= 100 and knn["test_samples"] == 16
    ft = evaluate(
        _eval_cfg(tiny_data, label_fraction="0.25"), ckpt, tmp_path / "ft", progress=False
    )
    # per class round(0.25 * 8) = 2 labelled samples, saved so the run can be repeated
    ids = json.loads((tmp_path / "ft" / "labelled_ids.json").read_text())
    assert ft["train_samples"] == 8 and len(ids) == 8
    assert len(ft["confusion"]) == 4
    again = evaluate(
        _eval_cfg(tiny_data, label_fraction="0.25"), ckpt, tmp_path / "ft2", progress=False
    )
    assert json.loads((tmp_path / "ft2" / "labelled_ids.json").read_text()) == ids
    assert again["top1"] == ft["top1"]


def test_scratch_finetune_runs_and_logs(tiny_data, tmp_path):
    res = evaluate(
        _eval_cfg(tiny_data, **{"optim.epochs": "2"}), None, tmp_path / "s", progress=False
    )
    lines = (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and res["checkpoint"] is None


def test_checkpoint_of_another_layout_is_refused(tmp_path):
    from mcc.checkpoint import save_checkpoint
    from mcc.layouts import OPENPOSE18
    from mcc.model import MCC
    from mcc.synthetic import SyntheticConfig, generate

    data = tmp_path / "d"
    generate(data, SyntheticConfig(num_classes=2, train_per_class=2, test_per_class=1))
    cfg = apply_overrides(PretrainConfig(), {"model.width": "0.125", "loss.queue_size": "64"})
    model = MCC(cfg, OPENPOSE18)
    save_checkpoint(
        tmp_path / "op.pt",
        {
            "kind": "pretrain",
            "config": __import__("mcc.config").config.to_dict(cfg),
            "layout": OPENPOSE18.to_json(),
            "epoch": 0,
            "model": model.state_dict(),
        },
    )
    with pytest.raises(CheckpointError, match="openpose18"):
        evaluate(
            _eval_cfg(str(data), protocol="knn"),
            str(tmp_path / "op.pt"),
            tmp_path / "e",
            progress=False,
        )
    assert NTU25.name in str(NTU25.to_json())


def test_linear_trains_only_the_classifier_with_the_encoder_frozen(tiny_data, tmp_path):
    from mcc.data import load_splits
    from mcc.evaluate import train_classifier
    from mcc.models import build_encoder

    cfg = _eval_cfg(tiny_data, **{"optim.epochs": "3", "optim.optimizer": "adam",
                                  "optim.lr": "0.01"})  # fmt: skip
    splits = load_splits(cfg.data)
    torch.manual_seed(0)
    encoder = build_encoder(cfg.model, splits.manifest.layout)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    res = train_classifier(encoder, splits.train, splits.test, cfg, 2, 4, None, False, True)
    after = encoder.state_dict()
    # weights and batch-norm statistics untouched
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert 0 <= res["top1"] <= 100 and len(res["confusion"]) == 4
    # the same loop with the encoder trainable moves it
    train_classifier(encoder.requires_grad_(True), splits.train, splits.test, cfg, 2, 4,
                     None, False, False)  # fmt: skip
    assert not all(torch.equal(before[k], encoder.state_dict()[k]) for k in before)
    out = evaluate(_eval_cfg(tiny_data, protocol="linear"), None, tmp_path / "lin", progress=False)
    assert out["protocol"] == "linear"
