import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mcc.checkpoint import CheckpointError, load_checkpoint
from mcc.config import ConfigError, PretrainConfig, apply_overrides, from_dict
from mcc.data import load_splits, train_ids
from mcc.model import MCC
from mcc.train import make_optimizer, pretrain, pretrain_batches, training_step, view_arrays

TINY = {
    "model.width": "0.125",
    "optim.batch_size": "8",
    "loss.queue_size": "16",
    "optim.schedule": "cosine",
    "optim.lr": "0.05",
    "threads": "1",
}


def tiny_cfg(data, **over):
    return apply_overrides(PretrainConfig(), {**TINY, "data.path": data, **over})


def fixed_batch(cfg):
    splits = load_splits(cfg.data)
    m = splits.manifest
    return m, next(pretrain_batches(splits.train, cfg, 0, m.max_bodies, m.layout.coord_channels))


@pytest.mark.parametrize("term", ["triplet", "nce", "interp"])
def test_each_term_lowers_on_a_fixed_batch_with_a_frozen_queue(tiny_data, term):
    weights = {
        k: "1" if k == f"loss.{term}" else "0" for k in ("loss.triplet", "loss.nce", "loss.interp")
    }
    cfg = tiny_cfg(tiny_data, **weights, **{"loss.momentum": "0.9"})
    manifest, batch = fixed_batch(cfg)
    torch.manual_seed(0)
    model = MCC(cfg, manifest.layout)
    if model.queue is not None:
        model.queue.enqueue = lambda keys, ids: None  # frozen queue
    opt, _ = make_optimizer(model.online_parameters(), cfg.optim)
    losses = [training_step(model, batch, opt, cfg)[term] for _ in range(12)]
    assert losses[-1] < 0.97 * losses[0] and losses[-1] < min(losses[:3]), losses


def test_gradients_never_reach_the_key_encoder(tiny_data):
    cfg = tiny_cfg(tiny_data)
    manifest, batch = fixed_batch(cfg)
    model = MCC(cfg, manifest.layout)
    opt, _ = make_optimizer(model.online_parameters(), cfg.optim)
    before = {k: v.clone() for k, v in model.key_encoder.state_dict().items()}
    online = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    training_step(model, batch, opt, cfg)
    assert all(p.grad is None for p in model.key_encoder.parameters())
    assert all(p.grad is None for p in model.key_head.parameters())
    m = cfg.loss.momentum
    # EMA with the online weights of before the step (MoCo updates keys before the loss)
    for name, p in model.key_encoder.named_parameters():
        expect = m * before[name] + (1 - m) * online[name]
        torch.testing.assert_close(p.detach(), expect)
    # the queue received this step's keys and ids at slots 0..batch-1
    assert model.queue.ptr.item() == cfg.optim.batch_size
    assert torch.equal(model.queue.ids[: cfg.optim.batch_size], batch["ids"])


def test_zero_weight_terms_are_not_computed(tiny_data):
    cfg = tiny_cfg(tiny_data, **{"loss.nce": "0", "loss.interp": "0"})
    manifest, batch = fixed_batch(cfg)
    model = MCC(cfg, manifest.layout)
    opt, _ = make_optimizer(model.online_parameters(), cfg.optim)
    out = training_step(model, batch, opt, cfg)
    assert set(out) == {"loss", "triplet"}


def test_all_weights_zero_leaves_the_model_untouched(tiny_data):
    """The no-pretraining control: weights and batch-norm statistics stay at their init."""
    cfg = tiny_cfg(tiny_data, **{"loss.triplet": "0", "loss.nce": "0", "loss.interp": "0"})
    manifest, batch = fixed_batch(cfg)
    model = MCC(cfg, manifest.layout)
    opt, _ = make_optimizer(model.online_parameters(), cfg.optim)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert training_step(model, batch, opt, cfg) == {"loss": 0.0}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_bf16_autocast_step_is_close_to_fp32_but_not_it(tiny_data):
    """Same init, same batch: bf16 autocast changes the loss terms by rounding only (measured:
    0.03-3 %), and it does change them (autocast really was on)."""
    out = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_cfg(tiny_data, precision=precision)
        manifest, batch = fixed_batch(cfg)
        torch.manual_seed(0)
        model = MCC(cfg, manifest.layout)
        opt, _ = make_optimizer(model.online_parameters(), cfg.optim)
        out[precision] = training_step(model, batch, opt, cfg)
    fp32, bf16 = out["fp32"], out["bf16"]
    assert fp32.keys() == bf16.keys() == {"loss", "triplet", "nce", "interp"}
    assert bf16 != fp32
    for k in fp32:
        assert bf16[k] == pytest.approx(fp32[k], rel=0.1), k
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=0.02)


def test_two_epoch_pretraining_lowers_the_loss(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, **{"optim.epochs": "2", "loss.nce": "0"})
    pretrain(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[1]["loss"] < rows[0]["loss"], rows
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert (result["train_samples"], result["epochs"], result["seed"]) == (32, 2, 0)
    assert result["final"] == rows[1] and result["first_loss"] == rows[0]["loss"]
    assert result["wall_time_s"] == round(sum(r["epoch_time_s"] for r in rows), 2)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert from_dict(PretrainConfig, saved) == cfg  # the run's config, every value


def _run_cli(args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "mcc", *args], capture_output=True, text=True, timeout=300, **kw
    )


def test_resume_after_a_kill_gives_identical_weights(tiny_data, tmp_path):
    sets = [f"--set={k}={v}" for k, v in {**TINY, "optim.epochs": "3"}.items()]
    args = ["pretrain", "--data", tiny_data, "--no-progress", *sets]
    full = _run_cli([*args, "--out", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr
    # start the same run, SIGKILL it once its first checkpoint exists, then resume
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcc", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 200
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(killed / "checkpoint.pt")
    assert state["epoch"] < 2, "the run finished before it was killed"
    again = _run_cli([*args, "--out", str(killed)])
    assert again.returncode == 2 and "--resume" in again.stderr  # no silent overwrite
    resumed = _run_cli([*args, "--out", str(killed), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    b = load_checkpoint(killed / "checkpoint.pt")["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    epochs = [json.loads(x)["epoch"] for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2]


def test_corrupt_or_missing_checkpoint_is_one_clear_error(tiny_data, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    out = _run_cli(
        [
            "evaluate",
            "--data",
            tiny_data,
            "--checkpoint",
            str(bad),
            "--protocol",
            "knn",
            "--out",
            str(tmp_path / "ev"),
        ]
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: checkpoint")


def test_truncated_checkpoint_is_never_half_loaded(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, **{"optim.epochs": "1"})
    pretrain(cfg, tmp_path / "run", progress=False)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        pretrain(cfg, tmp_path / "run", resume=True, progress=False)


def test_resume_with_another_config_is_refused(tiny_data, tmp_path):
    pretrain(tiny_cfg(tiny_data, **{"optim.epochs": "1"}), tmp_path / "r", progress=False)
    with pytest.raises(CheckpointError, match="another config"):
        pretrain(
            tiny_cfg(tiny_data, **{"optim.epochs": "1", "loss.tau": "0.2"}),
            tmp_path / "r",
            resume=True,
            progress=False,
        )


def test_batch_larger_than_dataset_is_a_clear_error(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, **{"optim.batch_size": "64", "loss.queue_size": "64"})
    with pytest.raises(ConfigError, match="fewer than one step's batch"):
        pretrain(cfg, tmp_path / "r", progress=False)


def test_zero_epochs_writes_an_untrained_checkpoint(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, **{"optim.epochs": "0"})
    pretrain(cfg, tmp_path / "r", progress=False)
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt")["epoch"] == -1


def test_validation_carve_is_seeded_per_class_and_shared_by_every_path(tiny_data):
    cfg = tiny_cfg(tiny_data, **{"data.val_fraction": "0.25"}).data
    splits = load_splits(cfg)
    assert [s.sample_id for s in splits.train] == train_ids(cfg)  # what Ray Data reads
    val_ids = {s.sample_id for s in splits.val}
    assert val_ids and not val_ids & set(train_ids(cfg))
    labels = [s.label for s in splits.val]
    assert all(labels.count(c) == 2 for c in set(labels))  # 25 % of 8 per class
    assert len(splits.train) + len(splits.val) == 32
    other = load_splits(tiny_cfg(tiny_data, **{"data.val_fraction": "0.25",
                                               "data.val_seed": "1"}).data)  # fmt: skip
    assert {s.sample_id for s in other.val} != val_ids


def test_lr_schedules_step_cosine_constant_after_warmup():
    from mcc.config import OptimConfig
    from mcc.train import lr_factor

    def factors(**kw):
        return [round(lr_factor(OptimConfig(**kw), e), 3) for e in range(4)]

    assert factors(schedule="step", milestones=(2,), epochs=4) == [1, 1, 0.1, 0.1]
    assert factors(schedule="cosine", epochs=4) == [1, 0.854, 0.5, 0.146]
    assert factors(schedule="constant", epochs=4, warmup_epochs=1) == [0.5, 1, 1, 1]


def test_min_frames_gives_a_short_sequence_unwrapped_speed_2_clips():
    """A 20-frame sequence cannot hold a 32-frame clip even at speed 1: it wraps. Stretched to
    64 frames (sampling.min_frames=64), its clips at speeds 1 and 2 fit."""
    import numpy as np

    seq = np.random.default_rng(0).normal(size=(1, 20, 25, 3)).astype(np.float32)
    sets = {"sampling.speeds": "1,2", "sampling.overflow": "loop"}
    plain = apply_overrides(PretrainConfig(), sets)
    stretched = apply_overrides(PretrainConfig(), {**sets, "sampling.min_frames": "64"})
    wraps = [view_arrays(seq, i, plain, 0, 1, (0, 1, 2))["wrapped"] for i in range(8)]
    assert min(wraps) > 0
    for i in range(8):
        views = view_arrays(seq, i, stretched, 0, 1, (0, 1, 2))
        assert views["wrapped"] == 0
        assert views["anchor"].shape[1] == 32  # (C, T, V, M)
