"""Device and precision (mcc/device.py) on a CPU-only machine: what `auto` resolves to, the
precision and gradient scaler each device type gets, and checkpoints that move between them."""

from __future__ import annotations

import json

import pytest
import torch

from mcc.checkpoint import load_checkpoint, save_checkpoint
from mcc.config import ConfigError, EvalConfig, PretrainConfig, apply_overrides
from mcc.data import load_splits
from mcc.device import Amp, loader_workers, resolve_device, resolve_precision
from mcc.evaluate import evaluate, finished_evaluation
from mcc.train import (
    build_training,
    pretrain,
    pretrain_batches,
    pretrain_epochs,
    restore_training,
    training_state,
    training_step,
)

CUDA0 = torch.device("cuda", 0)  # a device object only: nothing is allocated on it
SMALL = {"model.width": "0.125", "optim.batch_size": "8", "loss.queue_size": "16",
         "optim.lr": "0.05", "threads": "1", "optim.epochs": "2"}  # fmt: skip


def cfg_for(data: str, **over) -> PretrainConfig:
    return apply_overrides(PretrainConfig(), {**SMALL, "data.path": data, **over})


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_gpu(monkeypatch):
    """A GPU as torch.cuda reports it, bf16 support switched by the test (`.bf16 = False`)."""

    class Gpu:
        bf16 = True

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: Gpu.bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
    return Gpu


def test_auto_is_the_cpu_without_cuda(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"


@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_a_cuda_request_without_cuda_is_one_clear_error(no_cuda, name):
    with pytest.raises(ConfigError, match="no CUDA device is available here"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", ""])
def test_unknown_devices_name_the_choices(name):
    if name == "":
        assert resolve_device(name) == resolve_device("auto")
        return
    with pytest.raises(ConfigError, match="choose auto"):
        resolve_device(name)


def test_auto_takes_the_first_gpu_and_an_index_must_exist(fake_gpu):
    assert resolve_device("auto") == CUDA0
    assert resolve_device("cuda") == CUDA0
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="has 2 CUDA device"):
        resolve_device("cuda:2")


def test_precision_by_device_type(fake_gpu):
    cpu = torch.device("cpu")
    assert resolve_precision("auto", CUDA0) == "bf16"
    fake_gpu.bf16 = False
    assert resolve_precision("auto", CUDA0) == "fp16"
    with pytest.raises(ConfigError, match="does not support bfloat16"):
        resolve_precision("bf16", CUDA0)
    assert resolve_precision("fp32", CUDA0) == "fp32"
    assert [resolve_precision(p, cpu) for p in ("auto", "fp32", "bf16", "fp16")] == [
        "fp32", "fp32", "bf16", "fp16"]  # fmt: skip


def test_only_fp16_gets_a_gradient_scaler(fake_gpu):
    cpu = torch.device("cpu")
    assert Amp.create(cpu, "auto").scaler is None
    assert Amp.create(cpu, "bf16").scaler is None
    assert Amp.create(cpu, "fp16").scaler is not None
    assert Amp.create(CUDA0, "auto").precision == "bf16"
    assert Amp.create(CUDA0, "auto").scaler is None
    fake_gpu.bf16 = False
    amp = Amp.create(CUDA0, "auto")
    assert (amp.precision, amp.scaler is not None) == ("fp16", True)
    assert amp.record()["device"] == "cuda:0 (Fake GPU)"


def test_the_autocast_dtype_follows_the_precision():
    x, conv = torch.randn(2, 3, 8, 8), torch.nn.Conv2d(3, 4, 3)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16),
                             ("fp16", torch.float16)):  # fmt: skip
        with Amp.create(torch.device("cpu"), precision).autocast():
            assert conv(x).dtype == dtype


def test_an_fp16_step_scales_and_a_lone_step_refuses_to(tiny_data):
    cfg = cfg_for(tiny_data, precision="fp16")
    splits = load_splits(cfg.data)
    m = splits.manifest
    batch = next(pretrain_batches(splits.train, cfg, 0, m.max_bodies, m.layout.coord_channels))
    model, opt, _ = build_training(cfg, m.layout)
    with pytest.raises(ValueError, match="scales gradients across steps"):
        training_step(model, batch, opt, cfg)  # a scaler made per step would forget its scale
    amp = Amp.create(torch.device("cpu"), cfg.precision)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    terms = training_step(model, batch, opt, cfg, amp=amp)
    assert torch.isfinite(torch.tensor(terms["loss"]))
    sd = amp.scaler.state_dict()  # the scaler ran: it counted a good step or lowered its scale
    assert (sd["_growth_tracker"], sd["scale"]) != (0, 65536.0)
    changed = [not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters())]
    assert any(changed)


def test_a_checkpoint_from_a_gpu_run_resumes_on_the_cpu(tiny_data, tmp_path, fake_gpu):
    """A bf16 checkpoint recorded on a GPU (precision auto in its config) resumes on the CPU
    at fp32; its fp16 scaler state comes back only into a loop that scales again."""
    cfg = cfg_for(tiny_data)
    m = load_splits(cfg.data).manifest
    model, opt, sched = build_training(cfg, m.layout)
    gpu_amp = Amp(CUDA0, "bf16")
    state = training_state(cfg, m.layout, m.max_bodies, 0, model, opt, sched, gpu_amp)
    assert (state["device"], state["precision"]) == ("cuda:0 (Fake GPU)", "bf16")
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    fresh = build_training(cfg, m.layout)
    cpu_amp = Amp.create(torch.device("cpu"), cfg.precision)
    assert restore_training(loaded, cfg, *fresh, "ckpt", cpu_amp) == 1
    assert cpu_amp.precision == "fp32"

    scaled = Amp.create(torch.device("cpu"), "fp16").record()
    fp16 = {**loaded, **scaled, "scaler": {**scaled["scaler"], "scale": 1024.0}}
    again = Amp.create(torch.device("cpu"), "fp16")
    restore_training(fp16, cfg, *build_training(cfg, m.layout), "ckpt", again)
    assert again.scaler.get_scale() == 1024.0
    restore_training(fp16, cfg, *build_training(cfg, m.layout), "ckpt", cpu_amp)  # fp32: no scaler


def test_a_run_resumes_at_another_precision_but_not_with_another_setting(tiny_data, tmp_path):
    out = tmp_path / "run"
    one = cfg_for(tiny_data, precision="bf16", **{"optim.epochs": "1"})
    pretrain(one, out, progress=False)
    # the same run to 2 epochs: refused with another loss weight, resumed at fp32
    with pytest.raises(Exception, match="another config"):
        pretrain(cfg_for(tiny_data, **{"optim.epochs": "1", "loss.tau": "0.3"}), out,
                 resume=True, progress=False)  # fmt: skip
    res = pretrain(cfg_for(tiny_data, precision="fp32", **{"optim.epochs": "1"}), out,
                   resume=True, progress=False)  # fmt: skip
    assert res["precision"] == "fp32" and res["device"] == "cpu"
    assert load_checkpoint(out)["precision"] == "bf16"  # nothing left to run: bf16's checkpoint


def test_sampling_processes_give_the_same_batches(tiny_data):
    cfg = cfg_for(tiny_data)
    splits = load_splits(cfg.data)
    m = splits.manifest
    args = (splits.train, cfg, m.max_bodies, m.layout.coord_channels)
    here = [list(e) for e in pretrain_epochs(*args, start=0)]
    there = [list(e) for e in pretrain_epochs(*args, start=0, workers=2)]
    assert len(here) == len(there) == 2 and len(here[0]) == len(splits.train) // 8
    for a, b in zip(sum(here, []), sum(there, [])):
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    later = [list(e) for e in pretrain_epochs(*args, start=1, workers=1)]
    assert len(later) == 1 and torch.equal(later[0][0]["anchor"], here[1][0]["anchor"])


def test_loader_workers_default_by_device():
    assert loader_workers(None, torch.device("cpu")) == 0
    assert loader_workers(None, CUDA0, cpus=16) == 8
    assert loader_workers(None, CUDA0, cpus=1) == 0
    assert loader_workers(3, torch.device("cpu")) == 3
    with pytest.raises(ConfigError, match="--loader-workers"):
        loader_workers(-1, torch.device("cpu"))


def test_an_evaluation_records_its_device_and_is_reused_at_another_precision(tiny_data, tmp_path):
    ev = apply_overrides(EvalConfig(), {"data.path": tiny_data, "protocol": "linear",
                                        "model.width": "0.125", "optim.epochs": "1",
                                        "optim.batch_size": "8", "threads": "1"})  # fmt: skip
    res = evaluate(ev, None, tmp_path / "ev", progress=False, device="cpu")
    assert (res["device"], res["precision"]) == ("cpu", "fp32")
    saved = json.loads((tmp_path / "ev" / "config.json").read_text())
    assert saved["precision"] == "auto"
    bf16 = apply_overrides(ev, {"precision": "bf16"})
    assert finished_evaluation(bf16, tmp_path / "ev")["top1"] == res["top1"]
