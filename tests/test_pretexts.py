"""Table 4's comparison pretexts: their views (mcc.sampling), their training through the
same loop as MCC (mcc.train), and their checkpoints downstream (mcc.evaluate)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import NATOPS_LAYOUT

from mcc.config import ConfigError, EvalConfig, PretrainConfig, SamplingConfig, apply_overrides
from mcc.data import load_splits
from mcc.evaluate import evaluate
from mcc.graph import hop_distance
from mcc.layouts import NTU25, OPENPOSE18, get_layout
from mcc.pretrained import load_pretrained_encoder
from mcc.sampling import (
    CLIP_ORDERS,
    JIGSAW_ORDERS,
    body_regions,
    jigsaw_indices,
    jigsaw_views,
    order_views,
    pace_classes,
    pace_views,
    segment_order_indices,
)
from mcc.train import pretrain, pretrain_batches

TINY = {
    "model.width": "0.125",
    "optim.batch_size": "8",
    "optim.epochs": "1",
    "optim.schedule": "cosine",
    "threads": "1",
}


def coded_seq(t: int = 300, joints: int = 25, bodies: int = 1) -> np.ndarray:
    """(M, T, V, 3) float32: channel 0 holds the frame index, channel 1 the joint index."""
    seq = np.zeros((bodies, t, joints, 3), np.float32)
    seq[..., 0] = np.arange(t)[None, :, None]
    seq[..., 1] = np.arange(joints)[None, None, :]
    seq[..., 2] = 1.0
    return seq


def sampling(**kw) -> SamplingConfig:
    return SamplingConfig(**kw)


# --- views ---------------------------------------------------------------------------------


def test_order_view_shuffles_equal_segments_and_undoing_restores_the_clip():
    seq, cfg = coded_seq(), sampling()
    labels = set()
    for seed in range(60):
        v = order_views(seq, np.random.default_rng(seed), cfg)
        label = int(v["label"])
        assert 0 <= label < len(CLIP_ORDERS) == 6
        labels.add(label)
        frames = v["anchor"][0, :, 0, 0]  # the source frame of each output frame
        assert v["anchor"].shape == (1, 30, 25, 3)  # 3 segments of 32 // 3 frames
        order = CLIP_ORDERS[label]
        idx = segment_order_indices(32, order)
        restored = frames[np.argsort(idx)]
        steps = np.diff(restored) % 300
        assert len(set(steps.tolist())) == 1 and steps[0] in (1, 2, 4, 8)  # one clip, one speed
        # output segment j is input segment order[j]
        for j, k in enumerate(order):
            np.testing.assert_array_equal(
                frames[10 * j : 10 * j + 10], restored[10 * k : 10 * k + 10]
            )
        assert (label == 0) == bool(np.array_equal(frames, restored))
        assert (v["anchor"][..., 1] == np.arange(25)).all()  # joints untouched
    assert labels == set(range(6))


def test_views_are_seeded():
    seq = coded_seq()
    regions = body_regions(NTU25)
    makers = [
        lambda rng: order_views(seq, rng, sampling()),
        lambda rng: jigsaw_views(seq, rng, sampling(), regions),
        lambda rng: pace_views(seq, rng, sampling()),
    ]
    for make in makers:
        a, b = make(np.random.default_rng([1, 2, 3])), make(np.random.default_rng([1, 2, 3]))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        others = [make(np.random.default_rng([1, 2, s])) for s in range(4, 9)]
        assert any(not np.array_equal(a["anchor"], o["anchor"]) for o in others)


def test_jigsaw_moves_the_four_pieces_and_the_inverse_undoes_it():
    upper, lower = body_regions(NTU25)
    seq = coded_seq()
    labels = set()
    for seed in range(300):
        v = jigsaw_views(seq, np.random.default_rng(seed), sampling(), (upper, lower))
        label = int(v["label"])
        assert 0 <= label < len(JIGSAW_ORDERS) == 24
        labels.add(label)
        perm = JIGSAW_ORDERS[label]
        out = v["anchor"][0]  # (T, V, 3): channel 0 source frame, channel 1 source joint
        t_idx, v_idx = jigsaw_indices(32, 25, (upper, lower), np.argsort(perm))
        back = out[t_idx, v_idx]
        start = back[0, 0, 0]
        speed = back[1, 0, 0] - start
        frames = np.broadcast_to((start + speed * np.arange(32))[:, None], (32, 25))
        np.testing.assert_array_equal(back[..., 0], frames)
        np.testing.assert_array_equal(back[..., 1], np.broadcast_to(np.arange(25), (32, 25)))
        # slot j holds piece perm[j]; pieces are (region, half) = (upper|lower, first|second)
        halves = [np.arange(16), np.arange(16, 32)]
        pieces = [(r, h) for r in (upper, lower) for h in halves]
        for slot, piece in enumerate(perm):
            (r_out, h_out), (r_in, h_in) = pieces[slot], pieces[piece]
            block = out[np.ix_(h_out, r_out)]
            np.testing.assert_array_equal(block[..., 1], np.broadcast_to(r_in, block.shape[:2]))
            np.testing.assert_array_equal(block[..., 0], back[np.ix_(h_in, r_in)][..., 0])
        rest = sorted(set(range(25)) - set(upper) - set(lower))
        np.testing.assert_array_equal(out[:, rest], back[:, rest])  # trunk centre, hand tips
    assert labels == set(range(24))


def test_body_regions_per_layout():
    for layout in (NTU25, OPENPOSE18, get_layout(NATOPS_LAYOUT)):
        a, b = body_regions(layout)
        assert len(a) == len(b) >= 1 and not set(a) & set(b)
        assert layout.center not in set(a) | set(b)
    upper, lower = body_regions(NTU25)
    assert list(upper[:4]) == [4, 5, 6, 7] and list(lower[:4]) == [12, 13, 14, 15]  # arm, leg
    upper, lower = body_regions(OPENPOSE18)
    assert set(upper) == {2, 3, 4, 5, 6, 7} and set(lower) == {8, 9, 10, 11, 12, 13}
    natops = get_layout(NATOPS_LAYOUT)  # JSON layout: proximal half against distal half
    near, far = body_regions(natops)
    hop = hop_distance(natops)[natops.center]
    assert len(near) == 3 and max(hop[near]) <= min(hop[far])
    tiny = NTU25.__class__(name="pair", num_joints=2, edges=((0, 1),), center=0)
    with pytest.raises(ValueError, match="two body regions"):
        body_regions(tiny)


def test_pace_label_is_the_speed_the_clip_really_has():
    seq = coded_seq(300)
    seen = set()
    for seed in range(40):
        v = pace_views(seq, np.random.default_rng(seed), sampling())
        speed = pace_classes((1, 2, 4, 8))[int(v["label"])]
        assert (np.diff(v["anchor"][0, :, 0, 0]) % 300 == speed).all()
        seen.add(speed)
    assert seen == {1, 2, 4, 8}
    # overflow=cap on 70 frames: 8 and 4 become 2 (32 * 2 <= 70), and the label says 2
    short = coded_seq(70)
    for seed in range(20):
        v = pace_views(short, np.random.default_rng(seed), sampling(overflow="cap"))
        speed = pace_classes((1, 2, 4, 8))[int(v["label"])]
        assert speed in (1, 2) and (np.diff(v["anchor"][0, :, 0, 0]) == speed).all()
    assert pace_classes((2, 1, 2)) == (2, 1)


def test_pretext_config_checks():
    base = PretrainConfig()
    with pytest.raises(ConfigError, match="pretext='puzzle'"):
        apply_overrides(base, {"pretext": "puzzle"})
    with pytest.raises(ConfigError, match="pace.*two speeds"):
        apply_overrides(base, {"pretext": "pace", "sampling.speeds": "4"})
    with pytest.raises(ConfigError, match="clip_len=2.*order"):
        apply_overrides(base, {"pretext": "order", "sampling.clip_len": "2"})
    # MCC's own constraints do not bind another pretext: one speed, a queue < batch
    cfg = apply_overrides(base, {"pretext": "jigsaw", "sampling.speeds": "1",
                                 "loss.queue_size": "4"})  # fmt: skip
    assert cfg.pretext == "jigsaw"


# --- training ------------------------------------------------------------------------------


@pytest.mark.parametrize("pretext", ["order", "jigsaw", "pace"])
def test_batches_carry_long_labels_and_match_the_ray_data_stage(tiny_data, pretext):
    cfg = apply_overrides(PretrainConfig(), {**TINY, "data.path": tiny_data, "pretext": pretext})
    splits = load_splits(cfg.data)
    m = splits.manifest
    batch = next(pretrain_batches(splits.train, cfg, 0, m.max_bodies, m.layout.coord_channels))
    assert batch["label"].dtype == torch.long and batch["label"].shape == (8,)
    assert batch["anchor"].dtype == torch.float32 and batch["anchor"].shape[1] == 3
    assert "positive" not in batch
    pytest.importorskip("ray")
    # the map_batches function of the Ray Data path, fed raw rows as Ray Data would
    from mcc.train import batch_tensors, epoch_plan
    from tune.data import SampleViews

    idx = epoch_plan(len(splits.train), cfg, 0)[0][:8]
    raw = load_splits(apply_overrides(cfg.data, {"normalize": "none"})).train
    rows = {
        "index": np.array(idx),
        "data": [raw[i].joints.ravel() for i in idx],
        **{k: np.array([raw[i].joints.shape[d] for i in idx]) for d, k in
           enumerate(["bodies", "frames", "joints", "channels"])},
    }  # fmt: skip
    out = batch_tensors(SampleViews(cfg, m.layout, m.max_bodies, 0)(rows), idx)
    assert out.keys() == batch.keys()
    assert all(torch.equal(out[k], batch[k]) for k in batch)


def _metrics(run) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


class Killed(Exception):
    """Stands for a kill between two epochs (the CLI's real SIGKILL: tests/test_train.py)."""


def killed_after_epoch(monkeypatch, last: int) -> None:
    """Make mcc.train's epoch loop die when it starts the epoch after `last`, once that epoch's
    checkpoint is written."""
    import inspect

    import mcc.train

    run_epoch = mcc.train.run_epoch

    def dies(*args, **kw):
        if inspect.signature(run_epoch).bind(*args, **kw).arguments["epoch"] > last:
            raise Killed
        return run_epoch(*args, **kw)

    monkeypatch.setattr(mcc.train, "run_epoch", dies)


def top1_of_scores(run) -> float:
    """Top-1 (%) recomputed from a run's saved test-set class scores."""
    z = np.load(run / "scores.npz")
    return 100.0 * float(np.mean(z["scores"].argmax(1) == z["labels"]))


def test_a_pretext_run_resumes_exactly_and_its_checkpoint_evaluates_like_mccs(
    tiny_data, tmp_path, monkeypatch
):
    cfg = apply_overrides(PretrainConfig(), {**TINY, "data.path": tiny_data, "pretext": "jigsaw",
                                             "optim.epochs": "2"})  # fmt: skip
    pretrain(cfg, tmp_path / "full", progress=False)
    with monkeypatch.context() as m:
        killed_after_epoch(m, 0)
        with pytest.raises(Killed):
            pretrain(cfg, tmp_path / "cut", progress=False)
    assert [r["epoch"] for r in _metrics(tmp_path / "cut")] == [0]
    pretrain(cfg, tmp_path / "cut", progress=False, resume=True)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = _metrics(tmp_path / "cut")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert all({"loss", "pretext_loss", "pretext_acc"} <= set(r) for r in rows)
    assert not {"triplet", "nce", "interp"} & set(rows[0])
    # downstream, the checkpoint's encoder is what evaluation loads, as for MCC
    encoder, model_cfg, _ = load_pretrained_encoder(tmp_path / "full")
    own = {k[len("encoder.") :]: v for k, v in a.items() if k.startswith("encoder.")}
    assert all(torch.equal(v, own[k]) for k, v in encoder.state_dict().items())
    ev = apply_overrides(EvalConfig(), {"data.path": tiny_data, "protocol": "knn",
                                        "frames": "32", "threads": "1"})  # fmt: skip
    res = evaluate(ev, str(tmp_path / "full"), tmp_path / "knn", progress=False)
    assert res["test_samples"] == 16
    assert res["top1"] == pytest.approx(top1_of_scores(tmp_path / "knn"))


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory):
    """96 training sequences of slow, clean motion (no sensor noise, sway or idle frames, a
    256-frame loop period): the order of a clip's segments shows in their poses, which is what
    clip order prediction reads (each segment is encoded on its own, as in VCOP)."""
    from mcc.datasets.synthetic import SyntheticConfig, generate

    path = tmp_path_factory.mktemp("clean_synthetic")
    generate(path, SyntheticConfig(num_classes=4, train_per_class=24, test_per_class=1,
                                   num_subjects=4, min_frames=40, max_frames=120, noise=0.0,
                                   sway=0.0, idle_frames=0, period_frames=256, seed=5))  # fmt: skip
    return str(path)


# pretext: (overrides, epochs of 6 steps, classes, how many times chance the last 3 epochs'
# mean accuracy must reach). Measured on 2 busy cores (pretext accuracy per epoch, %):
# pace 57 68 80 89; jigsaw 5 2 8 17 12 3 17 12 22 13;
# order 14 17 23 20 19 21 23 21 31 26 31 31 30 21 37 32.
LEARNS = {
    "pace": ({"sampling.speeds": "1,8"}, 4, 2, 1.4),
    "jigsaw": ({}, 10, 24, 2.0),
    "order": ({"sampling.speeds": "1", "sampling.overflow": "cap"}, 16, 6, 1.4),
}


@pytest.mark.parametrize("pretext", list(LEARNS))
def test_each_comparison_pretext_learns_above_chance(clean_data, tmp_path, pretext):
    over, epochs, classes, times = LEARNS[pretext]
    cfg = apply_overrides(PretrainConfig(), {**TINY, "data.path": clean_data, "pretext": pretext,
                                             "optim.batch_size": "16", "optim.epochs": str(epochs),
                                             "optim.optimizer": "adam", "optim.lr": "0.003",
                                             **over})  # fmt: skip
    pretrain(cfg, tmp_path / "run", progress=False)
    acc = [r["pretext_acc"] for r in _metrics(tmp_path / "run")]
    chance = 100.0 / classes
    late = float(np.mean(acc[-3:]))
    assert late > times * chance and late > acc[0], acc


def test_cli_pretrains_with_a_pretext(tiny_data, tmp_path, capsys):
    from mcc.cli import main

    sets = [f"--set={k}={v}" for k, v in {**TINY, "pretext": "order"}.items()]
    out = tmp_path / "run"
    assert main(["pretrain", "--data", tiny_data, "--out", str(out), "--no-progress", *sets]) == 0
    assert "pretext_acc" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["pretext"] == "order"
    assert "pretext_acc" in _metrics(out)[0]
