"""Ray Data + Ray Train pretraining (tune/), on the shared 2-node Ray session of conftest."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("ray")

from mcc import presets  # noqa: E402
from mcc.checkpoint import load_checkpoint  # noqa: E402
from mcc.config import ConfigError, PretrainConfig, apply_overrides  # noqa: E402
from mcc.pretrained import load_pretrained_encoder  # noqa: E402
from mcc.train import pretrain  # noqa: E402
from tune.cluster import plan_resources  # noqa: E402
from tune.train import main as train_main  # noqa: E402
from tune.train import run_pretraining  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def tiny_cfg(data: str, **over) -> PretrainConfig:
    sets = {**presets.PRETRAIN["tiny"], "data.path": data, "threads": "1"}
    return apply_overrides(PretrainConfig(), {**sets, **{k: str(v) for k, v in over.items()}})


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_one_worker_gives_the_single_process_loss_curve(ray_cluster, tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data)
    pretrain(cfg, tmp_path / "single", progress=False)
    res = run_pretraining(cfg, tmp_path / "ray", num_workers=1, sampling="exact")
    assert res["sampling"] == "exact"
    # what the workers computed on, as their checkpoint records it
    assert (res["use_gpu"], res["gpus_per_worker"]) == (False, 0.0)
    assert (res["device"], res["precision"]) == ("cpu", "fp32")
    single, ray_run = history(tmp_path / "single"), history(tmp_path / "ray")
    assert [m["epoch"] for m in ray_run] == [0, 1]
    for a, b in zip(single, ray_run):
        for k in ("loss", "triplet", "nce", "interp", "wrapped_fraction"):
            assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-7), k
    wa = load_checkpoint(tmp_path / "single" / "checkpoint.pt")["model"]
    wb = load_checkpoint(tmp_path / "ray" / "checkpoint.pt")["model"]
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-5, atol=1e-6, msg=k)


def losses(run: Path) -> list[float]:
    return [m["loss"] for m in history(run)]


@pytest.mark.parametrize("sampling", ["ray-data", "worker"])
def test_the_streaming_paths_train_and_repeat_with_the_same_seed(
    ray_cluster, tiny_data, tmp_path, sampling
):
    """The default streaming path (and the workers' own fallback) trains (finite losses; on
    the tiny preset the loss rises over the first epochs as the queue fills, in the exact
    mode too) and the same seed and worker count give the same run."""
    cfg = tiny_cfg(tiny_data, **{"optim.epochs": 3})
    runs = []
    for name in ("a", "b"):
        res = run_pretraining(cfg, tmp_path / name, num_workers=1, sampling=sampling)
        assert res["sampling"] == sampling
        runs.append(losses(tmp_path / name))
    assert all(np.isfinite(runs[0])) and len(runs[0]) == 3
    assert runs[0] == runs[1]


def test_an_epoch_sort_escapes_a_capturing_placement_group(ray_cluster):
    """A Train worker under a Tune trial captures its child tasks into its one-CPU placement
    group, and Ray Data's sort submits a map task with no scheduling strategy when it cannot
    tell where the input blocks live (forced here: shuffle_input_batch_bytes=0). Iterated in
    that actor, the sort fails ("cannot fit into any bundles") or waits forever for the CPU
    the actor holds; through tune.data's reader it runs, in order."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @ray.remote(num_cpus=1)
    class Worker:
        def epoch(self) -> list[int]:
            from tune.data import iter_numpy_batches

            ds = ray.data.range(200, override_num_blocks=4).materialize()
            ds = ds.map_batches(lambda b: {"pos": (b["id"] * 37) % 200}).sort("pos")
            ds.context.shuffle_input_batch_bytes = 0
            ds.context.execution_options.preserve_order = True
            batches = iter_numpy_batches(ds, 50)
            return [int(p) for b in batches for p in b["pos"]]

    pg = placement_group([{"CPU": 1}])
    ray.get(pg.ready())
    try:
        strategy = PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)
        worker = Worker.options(scheduling_strategy=strategy).remote()
        assert ray.get(worker.epoch.remote(), timeout=120) == list(range(200))
        ray.kill(worker)
    finally:
        remove_placement_group(pg)


def test_other_backbone_stream_and_pretext_run_unchanged_through_ray(
    ray_cluster, tiny_data, tmp_path
):
    """AS-GCN on the bone stream with the jigsaw pretext (Table 4): Ray Data + Ray Train call
    the same view_arrays / training_step and reproduce the single-process run."""
    over = {"model.backbone": "asgcn", "model.stream": "bone", "pretext": "jigsaw"}
    cfg = tiny_cfg(tiny_data, **over)
    pretrain(cfg, tmp_path / "single", progress=False)
    run_pretraining(cfg, tmp_path / "ray", num_workers=1, sampling="exact")
    single, ray_run = history(tmp_path / "single"), history(tmp_path / "ray")
    assert len(ray_run) == 2
    for a, b in zip(single, ray_run):
        for k in ("loss", "pretext_loss", "pretext_acc"):
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), k
    encoder, model_cfg, _ = load_pretrained_encoder(tmp_path / "ray" / "checkpoint.pt")
    assert (model_cfg.backbone, model_cfg.stream) == ("asgcn", "bone")


def test_two_nodes_two_workers_survive_a_killed_worker(
    ray_cluster, tiny_data, tmp_path, monkeypatch
):
    """2 DDP workers, one per node, fed by the streaming Ray Data path; rank 1 is SIGKILLed
    mid-epoch 1 (after 1 of 2 steps), through MCC_FAULT (tune/worker.py: fault_from_env)."""
    cfg = tiny_cfg(tiny_data, **{"optim.epochs": 3, "optim.batch_size": 8})
    marker = tmp_path / "killed.txt"
    monkeypatch.setenv("MCC_FAULT", f"rank=1,epoch=1,step=1,once={marker}")
    with pytest.warns(UserWarning, match="local folder"):
        res = run_pretraining(
            cfg, tmp_path / "r", num_workers=2, cpus_per_worker=1, placement="STRICT_SPREAD",
            max_failures=1,
        )  # fmt: skip
    # 2 workers x 1 CPU leave 2 CPUs of the 2 nodes to Ray Data: the streaming path
    assert res["sampling"] == "ray-data"
    assert marker.read_text() == "killed rank 1 epoch 1 step 1\n"  # it really was killed
    runs = history(tmp_path / "r")
    assert [m["epoch"] for m in runs] == [0, 1, 2]
    # epoch 0 ran once; the restarted workers restored its checkpoint and began at epoch 1
    assert [m["started_at_epoch"] for m in runs] == [0, 1, 1]
    assert all(m["workers"] == 2 and m["nodes"] == 2 for m in runs)
    assert all(m["queue_spread"] == 0.0 for m in runs)  # every worker's queue is identical
    # close to one worker on the same global batch (a loose bound: seeds spread it ~0.1)
    monkeypatch.delenv("MCC_FAULT")
    one = tiny_cfg(tiny_data, **{"optim.epochs": 3, "optim.batch_size": 16})
    single = run_pretraining(one, tmp_path / "one", num_workers=1)["final"]["loss"]
    assert np.isfinite(runs[-1]["loss"])
    assert abs(runs[-1]["loss"] - single) < 0.25 * abs(single), (runs[-1]["loss"], single)
    # the run folder holds the last epoch's checkpoint (not an older one Ray Train recorded),
    # and the encoder evaluation loads is the one it trained
    state = load_checkpoint(res["checkpoint"])
    assert state["epoch"] == 2
    encoder, _, _ = load_pretrained_encoder(res["checkpoint"])
    trained = {k[len("encoder."):]: v for k, v in state["model"].items()
               if k.startswith("encoder.")}  # fmt: skip
    assert encoder.state_dict().keys() == trained.keys()
    assert all(torch.equal(v, trained[k]) for k, v in encoder.state_dict().items())


def test_killed_driver_then_resume_finishes_the_run(ray_cluster, tiny_data, tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, str(REPO / "tune" / "train.py"), "--address", ray_cluster.address,
           "--data", tiny_data, "--out", str(out), "--preset", "tiny", "--set", "threads=1",
           "--set", "optim.epochs=6", "--eval", "none"]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)
    ckpts = out / "ray" / "pretrain"
    deadline = time.time() + 240
    while time.time() < deadline and not list(ckpts.glob("checkpoint_*")):
        assert proc.poll() is None, "the run ended before it was killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job: driver and its Train controller
    proc.wait()
    with pytest.raises(ConfigError, match="--resume"):
        run_pretraining(tiny_cfg(tiny_data, **{"optim.epochs": 6}), out)
    run_pretraining(tiny_cfg(tiny_data, **{"optim.epochs": 6}), out, resume=True)
    runs = history(out)
    assert [m["epoch"] for m in runs] == list(range(6))
    assert runs[-1]["started_at_epoch"] >= 1


def test_ray_job_submit_writes_results(ray_cluster, tiny_data, tmp_path):
    out = tmp_path / "job"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    cmd = ["ray", "job", "submit", "--address", ray_cluster.dashboard_url,
           "--working-dir", str(REPO),
           "--runtime-env-json", json.dumps({"env_vars": {"RAY_AUTH_MODE": "disabled"}}),
           "--", "python", "tune/train.py", "--data", tiny_data, "--out", str(out),
           "--preset", "tiny", "--set", "optim.epochs=1", "--set", "threads=1",
           "--no-progress"]  # fmt: skip
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert json.loads((out / "result.json").read_text())["epochs"] == 1
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 0
    # the printed score is the evaluation's, as its saved test-set class scores give it
    printed = json.loads(re.search(r'\{"top1": [^}]*\}', r.stdout).group())
    z = np.load(out / "eval-knn" / "scores.npz")
    assert printed["top1"] == pytest.approx(100 * np.mean(z["scores"].argmax(1) == z["labels"]))


def test_runs_that_cannot_fit_fail_at_once(ray_cluster, tiny_data, tmp_path, capsys):
    t0 = time.time()
    with pytest.raises(ConfigError, match="does not fit"):
        plan_resources(num_workers=9, cpus_per_worker=1, use_gpu=False)
    with pytest.raises(ConfigError, match="does not fit"):
        plan_resources(num_workers=1, cpus_per_worker=3, use_gpu=False)  # 2 CPUs per node
    with pytest.raises(ConfigError, match="^--use-gpu: the cluster has no GPUs"):
        plan_resources(num_workers=1, cpus_per_worker=1, use_gpu=True)
    with pytest.raises(ConfigError, match="sampling=worker"):
        plan_resources(num_workers=2, cpus_per_worker=2, use_gpu=False, sampling="ray-data")
    assert plan_resources(2, 2, False) == ("worker", 0.0)  # every CPU is a worker's
    assert plan_resources(1, 1, False) == ("ray-data", 1.0)
    rc = train_main(["--data", tiny_data, "--out", str(tmp_path / "x"), "--num-workers", "9",
                     "--address", ray_cluster.address])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --num-workers=9") and "Traceback" not in err
    rc = train_main(["--data", tiny_data, "--out", str(tmp_path / "g"), "--use-gpu",
                     "--address", ray_cluster.address])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --use-gpu: the cluster has no GPUs") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "g").exists()
    with pytest.raises(ConfigError, match="SyncBatchNorm runs on GPUs only"):
        run_pretraining(tiny_cfg(tiny_data), tmp_path / "s", bn_mode="sync")
    assert time.time() - t0 < 30


def test_a_failed_run_ends_with_one_error_line(ray_cluster, tiny_data, tmp_path, capsys):
    rc = train_main(["--data", tiny_data, "--out", str(tmp_path / "r"), "--preset", "tiny",
                     "--set", "optim.lr=1e30", "--max-failures", "0", "--eval", "none",
                     "--address", ray_cluster.address])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "error: training failed" in err and "loss became" in err


def test_the_validation_objective_scores_a_synced_model_as_a_plain_one(tiny_data, tmp_path):
    """The sweep's objective (kNN on rank 0) recomputes batch-norm statistics on a plain CPU
    copy: with bn_mode sync the live model's SyncBatchNorm would otherwise try to share them
    with workers that are not scoring (on a CPU it refuses at once). The live model, its
    training mode and the global random stream are left as they are."""
    import copy

    import torch.distributed as dist

    from mcc.models import build_encoder
    from mcc.train import use_bn_mode
    from tune.worker import ValidationKnn

    cfg = tiny_cfg(tiny_data, **{"data.val_fraction": 0.25})
    objective = ValidationKnn(cfg, {"frames": "32", "threads": "1"})
    torch.manual_seed(0)
    plain = build_encoder(cfg.model, objective.manifest.layout)
    synced = use_bn_mode(copy.deepcopy(plain), "sync")
    before = {k: v.clone() for k, v in synced.state_dict().items()}
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        rng = torch.get_rng_state()
        score = objective(synced)
        assert torch.equal(torch.get_rng_state(), rng)  # the training's random stream untouched
    finally:
        dist.destroy_process_group()
    assert all(torch.equal(v, synced.state_dict()[k]) for k, v in before.items())
    assert synced.training  # left in training mode
    assert score == objective(plain)


def test_the_validation_bank_is_the_whole_split_below_its_bound_and_a_draw_above(tiny_data):
    """Below VAL_KNN_BANK the objective scores on exactly load_splits' train and validation
    samples (the same score); above it the bank is a seeded per-class draw of that size,
    read without the other rows."""
    from mcc.data import load_splits
    from tune.worker import validation_samples

    cfg = tiny_cfg(tiny_data, **{"data.val_fraction": 0.25}).data
    splits = load_splits(cfg)
    bank, val = validation_samples(cfg)
    assert [s.sample_id for s in bank] == [s.sample_id for s in splits.train]
    assert [s.sample_id for s in val] == [s.sample_id for s in splits.val]
    assert all(np.array_equal(a.joints, b.joints) for a, b in zip(bank, splits.train))
    small, val2 = validation_samples(cfg, bank_size=8)
    assert len(small) == 8 and [s.sample_id for s in val2] == [s.sample_id for s in val]
    assert sorted({s.label for s in small}) == sorted({s.label for s in splits.train})
    assert {s.sample_id for s in small} <= {s.sample_id for s in splits.train}
