import copy
import json

import numpy as np
import pytest
import torch

from mcc.checkpoint import CheckpointError
from mcc.config import ConfigError, EvalConfig, PretrainConfig, apply_overrides
from mcc.evaluate import evaluate
from mcc.features import precise_batch_norm
from mcc.knn import accuracy, knn_scores
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
    # renaming the bank's classes renames the predictions: scored against the renamed truth
    # it is still 100 %, against the old names 0 % (the permutation moves every class), and
    # with two classes of the bank merged into one the test sample of the other is lost
    perm = torch.tensor([1, 2, 3, 4, 0])
    renamed = knn_scores(train_f, perm[train_y], test_f, k=3, num_classes=5)
    assert accuracy(renamed, perm[test_y], 5)["top1"] == 100.0
    assert accuracy(renamed, test_y, 5)["top1"] == 0.0
    merged = train_y.clone()
    merged[merged == 4] = 3
    top1 = accuracy(knn_scores(train_f, merged, test_f, 3, 5), test_y, 5)["top1"]
    assert top1 == pytest.approx(80.0)


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
    # the reported top-1 is that of the saved class scores, one row per test sample
    saved = np.load(tmp_path / "knn" / "scores.npz")
    assert knn["test_samples"] == 16 == len(saved["labels"])
    hits = (saved["scores"].argmax(1) == saved["labels"]).mean()
    assert knn["top1"] == pytest.approx(100 * hits)
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


def test_finetune_logs_to_tensorboard_like_pretraining(tiny_data, tmp_path):
    pytest.importorskip("tensorboard")  # the `tb` extra
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    evaluate(_eval_cfg(tiny_data, **{"optim.epochs": "2"}), None, tmp_path / "s", progress=False)
    events = EventAccumulator(str(tmp_path / "s" / "tb"))
    events.Reload()
    assert {"finetune/loss", "finetune/train_top1", "finetune/lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("finetune/loss")] == [0, 1]


def test_checkpoint_of_another_layout_is_refused(tmp_path):
    from mcc.checkpoint import save_checkpoint
    from mcc.datasets.synthetic import SyntheticConfig, generate
    from mcc.layouts import OPENPOSE18
    from mcc.model import MCC

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
    from mcc.classifier import fit_classifier
    from mcc.data import load_splits
    from mcc.models import build_encoder

    cfg = _eval_cfg(tiny_data, **{"optim.epochs": "3", "optim.optimizer": "adam",
                                  "optim.lr": "0.01"})  # fmt: skip
    splits = load_splits(cfg.data)
    torch.manual_seed(0)
    encoder = build_encoder(cfg.model, splits.manifest.layout)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    expected = copy.deepcopy(encoder)
    precise_batch_norm(expected, splits.train, cfg.frames, 2, cfg.optim.batch_size)
    fit_classifier(encoder, splits.train, cfg, 2, 4, None, False, frozen=True)
    after = encoder.state_dict()
    # weights untouched; batch-norm statistics those of the training inputs, not of training
    assert all(torch.equal(before[k], after[k]) for k, _ in encoder.named_parameters())
    assert all(torch.equal(v, after[k]) for k, v in expected.state_dict().items())
    assert not all(torch.equal(before[k], after[k]) for k in before)
    # the same loop with the encoder trainable moves it
    fit_classifier(encoder.requires_grad_(True), splits.train, cfg, 2, 4, None, False)
    assert not all(torch.equal(before[k], encoder.state_dict()[k]) for k in before)
    cfg = _eval_cfg(tiny_data, protocol="linear", linear_lr="0.02", **{"optim.lr": "0.5",
                    "optim.schedule": "step", "optim.milestones": "9"})  # fmt: skip
    out = evaluate(cfg, None, tmp_path / "lin", progress=False)
    assert out["protocol"] == "linear"
    logged = [json.loads(line) for line in (tmp_path / "lin" / "metrics.jsonl").open()]
    assert [m["lr"] for m in logged] == [0.02]  # linear_lr, not optim.lr


def test_probe_head_init_starts_fine_tuning_from_the_linear_protocols_layer(tiny_data, tmp_path):
    """head_init=probe (LP-FT): the linear protocol on the frozen encoder first, then everything
    trained from its layer. With the fine-tuning lr at 0 the fine-tuned model therefore scores
    exactly as the linear protocol's run with the same settings; at random init it does not."""
    from mcc.classifier import folded_head
    from mcc.models import Classifier

    class Features(torch.nn.Module):
        out_channels = 8

        def forward(self, x):
            return x

    torch.manual_seed(0)
    probe = Classifier(Features(), 3, standardize=True).train()
    probe(3 * torch.randn(64, 8) + 1)
    probe.eval()
    plain = Classifier(Features(), 3)
    plain.fc.load_state_dict(folded_head(probe))
    f = 3 * torch.randn(16, 8) + 1
    assert torch.allclose(plain(f), probe(f), atol=1e-5)

    ckpt = _untrained_checkpoint(tiny_data, tmp_path / "pre")
    common = {"linear_lr": "0.05", "optim.epochs": "3", "optim.optimizer": "adam"}
    evaluate(_eval_cfg(tiny_data, protocol="linear", **common), ckpt, tmp_path / "lin",
             progress=False)  # fmt: skip
    for init in ("probe", "random"):
        cfg = _eval_cfg(tiny_data, head_init=init, **common, **{"optim.lr": "0"})
        evaluate(cfg, ckpt, tmp_path / init, progress=False)
    lin, probe_ft, random_ft = (np.load(tmp_path / d / "scores.npz")["scores"]
                                for d in ("lin", "probe", "random"))  # fmt: skip
    assert np.allclose(probe_ft, lin, atol=1e-4)
    assert not np.allclose(random_ft, lin, atol=1e-2)


# --- semi-supervised and transfer protocols (docs/design.md, "Downstream"; Tables 5-7) ---------


def _untrained_checkpoint(data, out):
    """A valid pretraining checkpoint of `data` (optim.epochs=0: the initial encoder)."""
    pre = apply_overrides(PretrainConfig(), {"data.path": data, "model.width": "0.125",
                                             "optim.batch_size": "8", "loss.queue_size": "16",
                                             "optim.epochs": "0", "threads": "1"})  # fmt: skip
    pretrain(pre, out, progress=False)
    return str(out / "checkpoint.pt")


def _npz_dataset(tmp_path, name, labels, splits):
    """A small ntu25 dataset from an .npz: random motion, the given labels and splits."""
    from mcc.datasets.npz import import_npz

    rng = np.random.default_rng(0)
    n = len(labels)
    src = tmp_path / f"{name}.npz"
    np.savez(src, joints=rng.normal(size=(n, 40, 25, 3)).astype(np.float32),
             labels=np.array(labels), split=np.array(splits))  # fmt: skip
    import_npz(src, "ntu25", tmp_path / name)
    return str(tmp_path / name)


def test_semi_draws_per_class_reproducibly_and_saves_the_ids(tiny_data, tmp_path):
    from mcc.classifier import semi_subset
    from mcc.data import load_splits

    splits = load_splits(_eval_cfg(tiny_data).data)
    classes = splits.manifest.classes
    draw = {seed: semi_subset(splits.train, 0.25, seed, classes) for seed in (0, 1)}
    label_of = {s.sample_id: s.label for s in splits.train}
    ids = {seed: [s.sample_id for s in d] for seed, d in draw.items()}
    # round(0.25 * 8) = 2 of each of the 4 classes, seeded
    assert sorted(label_of[i] for i in ids[0]) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [s.sample_id for s in semi_subset(splits.train, 0.25, 0, classes)] == ids[0]
    assert set(ids[1]) != set(ids[0])
    cfg = _eval_cfg(tiny_data, protocol="semi", label_fraction="0.25")
    res = evaluate(cfg, None, tmp_path / "semi", progress=False)
    saved = json.loads((tmp_path / "semi" / "labelled_ids.json").read_text())
    assert saved == ids[0] and res["labelled_ids"] == "labelled_ids.json"
    assert res["protocol"] == "semi" and res["labelled_per_class"] == [2, 2, 2, 2]
    assert res["train_samples"] == 8 and res["saved_checkpoint"]


def test_semi_messages(tmp_path):
    data = "unused"
    with pytest.raises(ConfigError, match=r"protocol=semi.*label_fraction.*\(got 1\.0\)"):
        _eval_cfg(data, protocol="semi")  # the default fraction 1.0 is not semi-supervised
    for bad in ("0", "1.5", "-0.1"):
        with pytest.raises(ConfigError, match=f"label_fraction={float(bad)}"):
            _eval_cfg(data, protocol="semi", label_fraction=bad)
    # class 2 has test samples only: the fraction cannot take one of it
    labels = [0, 0, 0, 1, 1, 1, 2, 0, 1, 2]
    splits = ["train"] * 6 + ["test"] * 4
    path = _npz_dataset(tmp_path, "gap", labels, splits)
    with pytest.raises(ConfigError, match=r"class 2 \('class2'\) has 0 training samples"):
        evaluate(_eval_cfg(path, protocol="semi", label_fraction="0.5"), None, tmp_path / "e",
                 progress=False)  # fmt: skip


def test_transfer_from_a_supervised_source_to_disjoint_target_classes(tiny_data, tmp_path):
    import dataclasses

    from conftest import TINY

    from mcc.datasets.synthetic import generate
    from mcc.pretrained import load_pretrained_encoder
    from mcc.shards import read_manifest

    target = tmp_path / "target"
    generate(target, dataclasses.replace(TINY, class_offset=TINY.num_classes))
    source_classes = set(read_manifest(tiny_data).classes)
    assert not source_classes & set(read_manifest(target).classes)
    # Table 7's "fully supervised": fine-tune on the source; its run folder is a checkpoint
    sup = evaluate(_eval_cfg(tiny_data), None, tmp_path / "sup", progress=False)
    assert sup["saved_checkpoint"] == str(tmp_path / "sup" / "checkpoint.pt")
    trained, model_cfg, _ = load_pretrained_encoder(tmp_path / "sup")
    assert model_cfg.width == 0.125
    cfg = _eval_cfg(str(target), protocol="transfer", **{"optim.epochs": "0"})
    res = evaluate(cfg, str(tmp_path / "sup"), tmp_path / "tr", progress=False)
    assert res["protocol"] == "transfer" and res["source_data"] == tiny_data
    assert res["source_dataset"] == "synthetic" and len(res["confusion"]) == 4
    # with no epochs to train, the target run starts from (and saves) the source encoder
    moved, _, _ = load_pretrained_encoder(tmp_path / "tr")
    a, b = trained.state_dict(), moved.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_inputs_to_evaluation_are_clear_messages(tiny_data, tmp_path, capsys):
    from conftest import NATOPS_LAYOUT, NATOPS_NPZ

    from mcc.cli import main
    from mcc.datasets.npz import import_npz

    ckpt = _untrained_checkpoint(tiny_data, tmp_path / "pre")
    with pytest.raises(ConfigError, match="protocol=transfer.*--checkpoint"):
        evaluate(_eval_cfg(tiny_data, protocol="transfer"), None, tmp_path / "t", progress=False)
    # an ntu25 encoder onto the NATOPS layout: one line naming both layouts
    natops = tmp_path / "natops"
    import_npz(NATOPS_NPZ, str(NATOPS_LAYOUT), natops)
    with pytest.raises(CheckpointError) as e:
        evaluate(_eval_cfg(str(natops), protocol="transfer"), ckpt, tmp_path / "n", progress=False)
    assert "'ntu25'" in str(e.value) and "'natops8'" in str(e.value)
    code = main(["evaluate", "--data", str(natops), "--checkpoint", ckpt, "--protocol",
                 "transfer", "--out", str(tmp_path / "cli"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "natops8" in err and "ntu25" in err
    # a checkpoint of another backbone than the config asks for
    with pytest.raises(ConfigError, match="model.backbone='stgcn'.*model.backbone='agcn'"):
        evaluate(_eval_cfg(tiny_data, protocol="knn", **{"model.backbone": "agcn"}), ckpt,
                 tmp_path / "b", progress=False)  # fmt: skip
    # an encoder read with another normalisation than it was trained on
    with pytest.raises(ConfigError, match="data.normalize=center; evaluate with --set "
                       "data.normalize=center .now center-align"):  # fmt: skip
        evaluate(_eval_cfg(tiny_data, protocol="knn", **{"data.normalize": "center-align"}),
                 ckpt, tmp_path / "norm", progress=False)  # fmt: skip
    # datasets without a labelled split to train or to test on
    only_train = _npz_dataset(tmp_path, "tr", [0, 1, 0, 1], ["train"] * 4)
    with pytest.raises(ConfigError, match="no 'test' split"):
        evaluate(_eval_cfg(only_train), None, tmp_path / "x", progress=False)
    only_test = _npz_dataset(tmp_path, "te", [0, 1, 0, 1], ["test"] * 4)
    with pytest.raises(ConfigError, match="no 'train' split"):
        evaluate(_eval_cfg(only_test), None, tmp_path / "y", progress=False)


def test_linear_probe_sees_standardised_features():
    """The linear protocol's classifier is linear in the features but blind to their scale and
    offset (a random encoder's pooled features vary by about 1e-3 between samples); the
    fine-tuning classifier is unchanged."""
    from mcc.models import Classifier

    class Features(torch.nn.Module):
        out_channels = 8

        def forward(self, x):
            return x

    torch.manual_seed(0)
    f = torch.randn(16, 8)
    probe = Classifier(Features(), 3, standardize=True).train()
    assert list(probe.norm.parameters()) == []  # no affine: still a linear classifier
    assert torch.allclose(probe(f), probe(1e-3 * f + 0.08), atol=1e-4)
    assert isinstance(Classifier(Features(), 3).norm, torch.nn.Identity)
    # after a short training (a few batches), testing standardises as training did: the
    # statistics are those of the batches, not a blend with the initial variance of 1
    probe = Classifier(Features(), 3, standardize=True).train()
    for _ in range(4):
        probe(1e-3 * torch.randn(32, 8) + 0.08)
    z = probe.eval().norm(1e-3 * torch.randn(512, 8) + 0.08)
    assert z.mean(0).abs().max() < 0.5 and ((z.std(0) - 1).abs() < 0.3).all()


def test_finetuned_model_tests_with_statistics_of_its_final_weights(tiny_data):
    """Precise BN: after fine-tuning, every batch norm's test statistics are those of the
    final weights on the training inputs. With one step (the whole set in one batch) the
    running averages of training (momentum 0.1) still hold 90 % of their initial values,
    and a model trained from scratch on 3 labels per class predicted one class in eval
    mode; now eval mode reproduces the batch statistics of that training set."""
    from mcc.classifier import fit_classifier
    from mcc.data import load_splits
    from mcc.features import batch_inputs
    from mcc.models import build_encoder

    cfg = _eval_cfg(tiny_data, **{"optim.batch_size": "64"})
    splits = load_splits(cfg.data)
    torch.manual_seed(0)
    encoder = build_encoder(cfg.model, splits.manifest.layout)
    model = fit_classifier(encoder, splits.train, cfg, splits.manifest.max_bodies,
                           len(splits.manifest.classes), progress=False)  # fmt: skip
    x = batch_inputs(splits.train, cfg.frames, splits.manifest.max_bodies)
    with torch.no_grad():
        model.eval()
        tested = model(x)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.train()  # normalise by this batch's own statistics
        batch = model(x)
    assert torch.allclose(tested, batch, rtol=1e-2, atol=1e-3 * float(batch.abs().max()))


def test_frozen_features_use_batch_norm_statistics_of_the_data(tiny_data):
    """kNN recomputes the frozen encoder's batch-norm statistics over the bank's inputs, on
    a copy. At random initialisation the statistics are 0 and 1, and every test sequence's
    pooled features were then nearly the same vector: the random-init control voted on
    differences of about 1e-3. The caller's encoder is left as it is."""
    from mcc.data import load_splits
    from mcc.features import encode, labels_of
    from mcc.knn import knn_test_scores
    from mcc.models import build_encoder

    cfg = _eval_cfg(tiny_data)
    splits = load_splits(cfg.data)
    bodies, n_cls = splits.manifest.max_bodies, len(splits.manifest.classes)
    torch.manual_seed(0)
    encoder = build_encoder(cfg.model, splits.manifest.layout)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    scores = knn_test_scores(encoder, splits.train, splits.test, cfg, bodies, n_cls)
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())

    def least_similar(enc):
        z = torch.nn.functional.normalize(encode(enc, splits.test, cfg.frames, bodies), dim=1)
        return float((z @ z.T).min())

    assert least_similar(encoder) > 0.999  # initial statistics: one vector for every input
    recomputed = copy.deepcopy(encoder)
    precise_batch_norm(recomputed, splits.train, cfg.frames, bodies, cfg.optim.batch_size)
    assert least_similar(recomputed) < 0.95
    bank = encode(recomputed, splits.train, cfg.frames, bodies)
    test_f = encode(recomputed, splits.test, cfg.frames, bodies)
    expected = knn_scores(bank, labels_of(splits.train), test_f, cfg.knn_k, n_cls)
    assert torch.allclose(scores, expected)


def test_scored_val_scores_the_carve_and_trains_on_the_rest(tiny_data, tmp_path):
    from mcc.data import load_splits

    cfg = _eval_cfg(tiny_data, protocol="knn", scored="val", **{"data.val_fraction": "0.25"})
    splits = load_splits(cfg.data)
    res = evaluate(cfg, None, tmp_path / "val", progress=False)
    scored = np.load(tmp_path / "val" / "scores.npz")["sample_ids"].tolist()
    labelled = json.loads((tmp_path / "val" / "labelled_ids.json").read_text())
    # 2 of each class's 8 training sequences are scored, the other 6 are the kNN bank
    assert scored == [s.sample_id for s in splits.val] and len(scored) == 8
    assert not set(scored) & set(labelled) and len(labelled) == 24
    assert res["scored"] == "val" and res["test_samples"] == 8
    with pytest.raises(ConfigError, match="data.val_fraction"):
        evaluate(_eval_cfg(tiny_data, protocol="knn", scored="val"), None, tmp_path / "no")
