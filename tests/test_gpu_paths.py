"""The Ray layer's GPU paths, checked on a CPU-only machine: every tensor a Train worker hands
to torch.distributed is on the worker's device (NCCL takes CUDA tensors only), trial
concurrency follows the GPUs, GPU requests that cannot fit are refused, and --use-gpu
reaches the workers from every command. No Ray session: the collectives run in a 1-process
gloo group here, as Ray Train sets one up for a 1-worker run."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("ray")

import torch.distributed as dist  # noqa: E402

from mcc import presets  # noqa: E402
from mcc.config import ConfigError, PretrainConfig, apply_overrides  # noqa: E402
from mcc.data import load_splits  # noqa: E402
from mcc.device import Amp  # noqa: E402
from mcc.train import build_training, pretrain_batches, seed_everything, to_device  # noqa: E402
from tune import cluster, tuner  # noqa: E402
from tune.worker import Collectives, Worker, collectives, train_epoch  # noqa: E402

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)
NODE = "a3f1c2d4e5b6978812345678"  # a Ray node id: hex


def tiny_cfg(data: str) -> PretrainConfig:
    sets = {**presets.PRETRAIN["tiny"], "data.path": data, "threads": "1", "optim.epochs": "1"}
    return apply_overrides(PretrainConfig(), sets)


@pytest.fixture
def gloo_group():
    """A 1-process gloo group in this process (what Ray Train sets up for one CPU worker)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.fixture
def handed(monkeypatch) -> list[tuple[str, torch.Tensor]]:
    """Every tensor passed to dist.all_gather / dist.all_reduce, by call, as (call, tensor)."""
    seen: list[tuple[str, torch.Tensor]] = []
    gather, reduce = dist.all_gather, dist.all_reduce

    def all_gather(parts, x, *a, **kw):
        seen.extend([("all_gather", x), *(("all_gather out", p) for p in parts)])
        return gather(parts, x, *a, **kw)

    def all_reduce(x, *a, **kw):
        seen.append(("all_reduce", x))
        return reduce(x, *a, **kw)

    monkeypatch.setattr(dist, "all_gather", all_gather)
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    return seen


def one_epoch(data: str, comm: Collectives | None) -> tuple[dict, Worker]:
    """The worker's epoch (tune.worker.train_epoch) on the CPU, from the same seed."""
    cfg = tiny_cfg(data)
    splits = load_splits(cfg.data)
    m = splits.manifest
    seed_everything(cfg.seed)
    model, opt, sched = build_training(cfg, m.layout)
    amp = Amp.create(CPU, cfg.precision)
    w = Worker(model, model, opt, sched, 0, [], 0, 1, 1, CPU, amp, comm)
    batches = pretrain_batches(splits.train, cfg, 0, m.max_bodies, m.layout.coord_channels)
    return train_epoch(w, to_device(batches, CPU), cfg, 0, "per-worker"), w


def test_every_tensor_of_a_collective_is_on_the_worker_device(tiny_data, gloo_group, handed):
    comm = collectives(CPU)
    assert comm is not None  # a process group of one worker still has collectives
    metrics, _ = one_epoch(tiny_data, comm)
    assert comm.count_nodes(NODE) == 1
    calls = {call for call, _ in handed}
    assert calls == {"all_gather", "all_gather out", "all_reduce"}
    # keys and ids each step, the queue check, the node id; the tallies once
    assert sum(call == "all_gather" for call, _ in handed) >= 4
    assert [x.dtype for call, x in handed if call == "all_reduce"] == [torch.float64]
    assert all(x.device == CPU for _, x in handed)
    assert metrics["queue_spread"] == 0.0


def test_one_worker_collectives_change_no_number(tiny_data, gloo_group):
    """At world size 1 the all-gathers and the all-reduce are identities in value: the epoch
    equals the one without a process group (what the 1-worker Ray test compares against)."""
    with_group, w1 = one_epoch(tiny_data, collectives(CPU))
    without, w2 = one_epoch(tiny_data, None)
    for k in ("loss", "triplet", "nce", "interp", "wrapped_fraction", "lr"):
        assert with_group[k] == without[k], k
    assert torch.equal(w1.model.queue.keys, w2.model.queue.keys)
    assert torch.equal(w1.model.queue.ids, w2.model.queue.ids)


def test_a_tensor_off_the_worker_device_is_refused_before_the_collective(handed):
    comm = Collectives(GPU)  # declared only: nothing is allocated on a GPU
    with pytest.raises(RuntimeError, match=r"the key batch is on cpu, not on this worker's "
                                           r"device cuda:0"):  # fmt: skip
        comm.gather(torch.zeros(2, 3), "the key batch")
    with pytest.raises(RuntimeError, match="the epoch's tallies is on cpu"):
        comm.check(torch.zeros(3, dtype=torch.float64), "the epoch's tallies")
    assert handed == []  # refused before any collective ran
    assert Collectives(torch.device("cuda")).device.index is None  # any CUDA index accepted


def test_no_process_group_means_no_collectives():
    assert not dist.is_initialized()
    assert collectives(CPU) is None


@pytest.mark.parametrize(
    "resources, workers, cpus, gpus, limit, expected",
    [
        ({"CPU": 4}, 1, 1, 0, None, 3),  # CPUs less one for Ray Data
        ({"CPU": 2}, 1, 1, 0, None, 1),
        ({"CPU": 2}, 2, 2, 0, None, 1),  # never below one
        ({"CPU": 16, "GPU": 2}, 1, 1, 1, None, 2),  # the GPUs bind
        ({"CPU": 16, "GPU": 2}, 1, 1, 0.5, None, 4),  # half a GPU each: two trials per GPU
        ({"CPU": 16, "GPU": 8}, 2, 1, 1, None, 4),
        ({"CPU": 5, "GPU": 8}, 1, 1, 1, None, 4),  # the CPUs bind
        ({"CPU": 16, "GPU": 8}, 1, 1, 1, 3, 3),  # --max-concurrent
        ({"CPU": 16, "GPU": 8}, 1, 1, 0, None, 15),  # CPU trials ignore the GPUs
        ({"CPU": 16}, 1, 1, 1, None, 1),  # no GPUs: refused earlier (plan_resources)
    ],
)
def test_trial_concurrency_is_what_cpus_and_gpus_both_allow(resources, workers, cpus, gpus,
                                                            limit, expected):  # fmt: skip
    assert tuner.concurrency(workers, cpus, limit, gpus, resources=resources) == expected


def nodes(*gpus: float) -> list[dict]:
    return [{"Resources": {"CPU": 8.0, **({"GPU": g} if g else {})}} for g in gpus]


def test_gpu_requests_that_cannot_fit_are_refused():
    cluster.check_gpus(2, 1.0, nodes(1, 1))
    cluster.check_gpus(1, 0.5, nodes(1))  # sweep trials sharing a GPU
    with pytest.raises(ConfigError, match="workers of one run may not share a GPU"):
        cluster.check_gpus(4, 0.5, nodes(1, 1))
    cluster.check_gpus(3, 0, nodes(0))  # CPU workers: no GPU needed
    with pytest.raises(ConfigError, match=r"^--use-gpu: the cluster has no GPUs \(2 node"):
        cluster.check_gpus(1, 1.0, nodes(0, 0))
    with pytest.raises(ConfigError, match="3 worker.s. x --gpus-per-worker=1 does not fit: "
                                          "the cluster has 2 GPUs"):  # fmt: skip
        cluster.check_gpus(3, 1.0, nodes(1, 1))
    with pytest.raises(ConfigError, match="at most 1 on one node"):
        cluster.check_gpus(1, 2.0, nodes(1, 1))


def test_gpus_per_worker_defaults_to_one_and_needs_use_gpu():
    assert cluster.worker_gpus(False, None) == 0.0
    assert cluster.worker_gpus(True, None) == 1.0
    assert cluster.worker_gpus(True, 0.25) == 0.25
    with pytest.raises(ConfigError, match=r"--gpus-per-worker=2: add --use-gpu"):
        cluster.worker_gpus(False, 2)
    with pytest.raises(ConfigError, match="must be > 0"):
        cluster.worker_gpus(True, 0)


def test_the_trainer_of_a_gpu_run_names_nccl_and_the_gpus(tiny_data):
    from mcc.shards import read_manifest
    from tune.train import _trainer
    from tune.worker import WorkerRun

    m = read_manifest(tiny_data)
    run = WorkerRun(cfg=tiny_cfg(tiny_data), layout=m.layout, bodies=m.max_bodies, raw=None,
                    num_samples=32, storage=("/tmp/unused", "r"), sampling="worker",
                    data_cpus=0.0, bn_mode="sync", threads=1)  # fmt: skip
    gpu = _trainer(run, 2, 4, 1.0, "PACK", 0, None)
    assert gpu.backend_config.backend == "nccl"
    assert gpu.scaling_config.use_gpu
    assert gpu.scaling_config.resources_per_worker == {"CPU": 4, "GPU": 1.0}
    cpu = _trainer(run, 1, 1, 0.0, "PACK", 0, None)
    assert cpu.backend_config.backend == "gloo" and not cpu.scaling_config.use_gpu
    assert cpu.scaling_config.resources_per_worker == {"CPU": 1}


def test_trials_pass_use_gpu_to_their_train_run(monkeypatch, tmp_path):
    """The sweep's --use-gpu / --gpus-per-worker are bound to every trial, which hands them
    to its Train run (Tune itself is replaced here: binding would start Ray)."""
    import argparse
    import types

    import tune.train
    from tune.trial import run_trial

    bound, seen = {}, {}
    fake_tune = types.SimpleNamespace(
        with_parameters=lambda f, **kw: bound.update(kw) or f, with_resources=lambda f, r: f)
    monkeypatch.setattr(tuner, "tune", fake_tune)
    monkeypatch.setattr(tuner, "driver_resources", lambda: {"CPU": 0})

    def fake_run(cfg, out, **kw):
        seen.update(kw)
        return {"final": {"epoch": 0}, "checkpoint": "", "wall_time_s": 1.0}

    monkeypatch.setattr(tune.train, "run_pretraining", fake_run)
    monkeypatch.setattr("ray.tune.integration.ray_train.TuneReportCallback", lambda: None)
    args = argparse.Namespace(workers_per_trial=2, cpus_per_worker=3, use_gpu=True,
                              gpus_per_worker=0.5)  # fmt: skip
    trainable = tuner.trainable(args, PretrainConfig(), tmp_path)
    assert (bound["workers"], bound["cpus"], bound["use_gpu"], bound["gpus"]) == (2, 3, True, 0.5)
    trainable({"loss.tau": 0.2}, **bound)
    assert trainable is run_trial
    assert (seen["num_workers"], seen["cpus_per_worker"]) == (2, 3)
    assert (seen["use_gpu"], seen["gpus_per_worker"]) == (True, 0.5)
