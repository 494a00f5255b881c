"""The Ray Train worker: MCC pretraining under DDP, calling `mcc.train` unchanged.

Every worker builds the same model from the same seed (DDP also broadcasts rank 0's weights),
restores the latest Ray Train checkpoint if there is one, and runs `mcc.train.run_epoch` with
 - the all-gather for keys, so every worker's queue receives the keys of all workers in the
   same order and the queues stay identical (checked each epoch: `queue_spread`),
 - the batch-norm mode (`per-worker`, or `sync` with SyncBatchNorm),
 - a sum over workers of the epoch's tallies, so the reported loss is the global mean.
Rank 0 writes the checkpoint (mcc's format, `checkpoint.pt`, plus the metrics of every epoch
so far) and every rank reports.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

import pyarrow.fs
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mcc.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mcc.config import PretrainConfig, from_dict
from mcc.layouts import layout_from_dict
from mcc.train import (
    build_training,
    epoch_line,
    pretrain_batches,
    restore_training,
    run_epoch,
    seed_everything,
    training_state,
    use_bn_mode,
)
from tune.data import epoch_batches, epochs_ahead, local_samples

CHECKPOINT_FILE = "checkpoint.pt"


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def _sum_over_workers(tally: dict[str, float]) -> dict[str, float]:
    keys = sorted(tally)
    t = torch.tensor([tally[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def _queue_spread(net) -> float:
    """Largest difference between this worker's queue and any other worker's (0: identical)."""
    if net.queue is None or not dist.is_initialized():
        return 0.0
    q = torch.cat([net.queue.keys.flatten().double(), net.queue.ids.double()])
    all_q = _all_gather(q.unsqueeze(0))
    return float((all_q - all_q[0]).abs().max())


def _to_device(batches, device):
    for b in batches:
        yield {k: v.to(device, non_blocking=True) for k, v in b.items()}


def _fault(batches, fault: dict | None, epoch: int, rank: int):
    """Test hook: SIGKILL this worker process once at (rank, epoch, step); a marker file makes
    the restarted worker carry on."""
    for step, b in enumerate(batches):
        if (
            fault
            and (fault["rank"], fault["epoch"], fault["step"]) == (rank, epoch, step)
            and not Path(fault["marker"]).exists()
        ):
            Path(fault["marker"]).write_text(f"killed rank {rank} epoch {epoch} step {step}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        yield b


def checkpoint_dirs(storage_path: str, name: str):
    """The run's Ray checkpoint folders, newest first (their names are timestamps)."""
    fs, root = pyarrow.fs.FileSystem.from_uri(storage_path)
    info = fs.get_file_info(pyarrow.fs.FileSelector(f"{root}/{name}", allow_not_found=True))
    dirs = [
        i.path
        for i in info
        if i.base_name.startswith("checkpoint_") and i.type == pyarrow.fs.FileType.Directory
    ]
    return fs, sorted(dirs, reverse=True)


def latest_checkpoint(storage_path: str, name: str):
    """The newest checkpoint of a run that loads, as (ray.train.Checkpoint, its training
    state), or None.

    Ray Train restores from its own record of reported checkpoints, which it updates after the
    report returns: a worker or job killed right after a report loses it (seen here: a worker
    killed one step after its epoch-0 report restarted from scratch). The folder itself is
    the record that survives; checkpoints a kill left half-copied are skipped."""
    fs, dirs = checkpoint_dirs(storage_path, name)
    for d in dirs:
        ckpt = ray.train.Checkpoint(path=d, filesystem=fs)
        try:
            with ckpt.as_directory() as local:
                state = load_checkpoint(Path(local) / CHECKPOINT_FILE)
        except CheckpointError as e:
            print(f"skipping {d}: {e}", file=sys.stderr)
            continue
        state["path"] = ckpt.path
        return ckpt, state
    return None


class ValidationKnn:
    """The sweep's objective: kNN top-1 (%) of the pooled backbone features on the seeded
    validation split carved from the training split (never the test split), with the
    pretraining split as the labelled bank. Computed on rank 0 after each epoch."""

    def __init__(self, cfg: PretrainConfig, eval_overrides: dict) -> None:
        from mcc.config import EvalConfig, apply_overrides
        from mcc.data import load_splits

        if cfg.data.val_fraction <= 0:
            raise ValueError("objective val_knn needs data.val_fraction > 0")
        self.model_cfg = cfg.model
        self.splits = load_splits(cfg.data)
        self.cfg = apply_overrides(EvalConfig(), {"data.path": cfg.data.path, **eval_overrides})

    def __call__(self, encoder) -> float:
        from mcc.evaluate import knn
        from mcc.models import build_encoder

        m = self.splits.manifest
        # a plain CPU encoder with the live weights: kNN inputs are on the CPU, and kNN
        # recomputes batch-norm statistics, which a SyncBatchNorm (bn_mode sync) would try to
        # share with workers that are not scoring. Its random init must not draw from the
        # training's random stream.
        with torch.random.fork_rng(devices=[]):
            enc = build_encoder(self.model_cfg, m.layout)
        enc.load_state_dict({k: v.detach().cpu() for k, v in encoder.state_dict().items()})
        with torch.no_grad():
            res = knn(enc, self.splits.train, self.splits.val, self.cfg, m.max_bodies,
                      len(m.classes))  # fmt: skip
        return float(res["top1"])


def _quiet_train_reports() -> None:
    """Ray Train 2.60 logs each report ("Reporting training result N: TrainingReport(...)",
    a long line per epoch) through a logger named by its file's path, outside `ray.train`,
    where RunConfig's LoggingConfig does not reach: quiet that one logger here."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray layout: its lines stay
        return
    logger = getattr(context, "logger", None) or logging.getLogger(context.__file__)
    logger.setLevel(logging.WARNING)


def train_loop(config: dict) -> None:
    """Ray Train `train_loop_per_worker`. config: cfg (PretrainConfig as a dict), layout,
    bodies, raw (the materialized dataset), num_samples, storage ([path, run name]),
    sampling ('ray-data' | 'worker'), data_cpus, bn_mode, threads, objective ('val_knn' or
    None), eval_overrides, epoch_lines (print one line per epoch), fault (tests only)."""
    _quiet_train_reports()
    cfg = from_dict(PretrainConfig, config["cfg"])
    layout = layout_from_dict(config["layout"])
    bodies = config["bodies"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config["threads"])
    device = ray.train.torch.get_device()

    seed_everything(cfg.seed)
    model, opt, sched = build_training(cfg, layout)
    start, history = 0, []
    # The storage folder holds every checkpoint Ray Train recorded and the ones it had not yet
    # recorded when a worker or the job was killed: restore the newest of them.
    found = latest_checkpoint(*config["storage"])
    if found is not None:
        state = found[1]
        start = restore_training(state, cfg, model, opt, sched, state["path"])
        history = state.get("history", [])[:start]
    model = use_bn_mode(model, config["bn_mode"]).to(device)
    ddp = model
    if world > 1:
        # Buffers are not broadcast: the queue is kept identical by the all-gather, and
        # per-worker batch-norm statistics are what bn_mode=per-worker means.
        ddp = DistributedDataParallel(model, broadcast_buffers=False)
    gather = _all_gather if world > 1 else (lambda x: x)
    # Ray node ids, not node ranks: Train ranks nodes by IP, and test clusters share one IP.
    node = torch.tensor([int(ray.get_runtime_context().get_node_id()[:15], 16)])
    nodes = len(set(gather(node).tolist()))
    total = _sum_over_workers if world > 1 else None

    raw, n = config["raw"], config["num_samples"]
    samples = local_samples(raw, n, cfg, layout) if config["sampling"] == "worker" else None
    bs = cfg.optim.batch_size

    def stream(epoch: int):
        return epoch_batches(raw, n, cfg, layout, bodies, epoch, rank, world, config["data_cpus"])

    if samples is not None:
        epochs = (
            pretrain_batches(samples, cfg, e, bodies, layout.coord_channels, rank, world)
            for e in range(start, cfg.optim.epochs)
        )
    else:  # enough batches ahead to cover the next epoch's sort (about 5 s here)
        epochs = epochs_ahead(stream, start, cfg.optim.epochs, depth=max(8, 512 // bs))
    objective = None
    if config.get("objective") == "val_knn" and rank == 0:
        objective = ValidationKnn(cfg, config.get("eval_overrides") or {})
    if start >= cfg.optim.epochs and history:
        # Nothing left to train (a resumed run that had finished): report the last epoch
        # again, so a Tune trial restored around this run still gets its final metrics.
        ray.train.report(history[-1])
    for epoch, batches in zip(range(start, cfg.optim.epochs), epochs):
        batches = _to_device(_fault(batches, config.get("fault"), epoch, rank), device)
        metrics = run_epoch(
            ddp,
            opt,
            sched,
            batches,
            cfg,
            epoch,
            gather=gather,
            bn_mode=config["bn_mode"],
            total=total,
        )
        metrics["queue_spread"] = _queue_spread(model)
        metrics["workers"] = world
        metrics["nodes"] = nodes
        metrics["started_at_epoch"] = start  # > 0: this process resumed from a checkpoint
        if objective is not None:
            metrics["val_knn_top1"] = objective(model.encoder)
        history.append(metrics)
        if rank == 0 and config.get("epoch_lines"):  # a sweep's trials print through Tune
            print(epoch_line(metrics, cfg.optim.epochs), flush=True)
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0:
                state = training_state(cfg, layout, bodies, epoch, model, opt, sched)
                state["history"] = history  # the epochs' metrics travel with the checkpoint
                save_checkpoint(Path(d) / CHECKPOINT_FILE, state)
                checkpoint = ray.train.Checkpoint.from_directory(d)
            ray.train.report(metrics, checkpoint=checkpoint)
