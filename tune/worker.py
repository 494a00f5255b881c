"""The Ray Train worker: MCC pretraining under DDP, calling `mcc.train` unchanged.

Every worker builds the same model from the same seed (DDP also broadcasts rank 0's weights),
restores the latest Ray Train checkpoint if there is one, and runs `mcc.train.run_epoch` with
 - the all-gather for keys, so every worker's queue receives the keys of all workers in the
   same order and the queues stay identical (checked each epoch: `queue_spread`),
 - the batch-norm mode (`per-worker`, or `sync` with SyncBatchNorm),
 - a sum over workers of the epoch's tallies, so the reported loss is the global mean.
Rank 0 writes the checkpoint (mcc's format, `checkpoint.pt`, plus the metrics of every epoch
so far) and every rank reports.

`train_loop` is the thin per-worker function (Ray Train's pattern): set up (restore, wrap the
model, this worker's batches), then per epoch `train_epoch` (plain torch, no Ray), score and
`report_epoch`. `MCC_FAULT` (`fault_from_env`) is the one fault-injection point, for tests.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mcc.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mcc.config import PretrainConfig
from mcc.layouts import Layout
from mcc.train import (
    build_training,
    epoch_line,
    identity,
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


FAULT_ENV = "MCC_FAULT"


@dataclass(frozen=True)
class Fault:
    """Where a worker process kills itself (SIGKILL, as the OOM killer or a lost node would):
    before batch `step` of `epoch` on `rank`. With `once` (a marker file) it fires one time:
    the marker is written before the kill, and a worker that finds it carries on."""

    rank: int
    epoch: int
    step: int = 0
    once: str = ""


def fault_from_env() -> Fault | None:
    """The fault MCC_FAULT asks for ("rank=1,epoch=1,step=1,once=/tmp/killed"), or None when
    it is unset: the only fault-injection point (tests; docs/ray.md, "Fault injection")."""
    text = os.environ.get(FAULT_ENV, "").strip()
    if not text:
        return None
    try:
        fields = dict(item.split("=", 1) for item in text.split(","))
        return Fault(**{k: v if k == "once" else int(v) for k, v in fields.items()})
    except (TypeError, ValueError):
        raise ValueError(
            f"{FAULT_ENV}={text!r}: expected rank=R,epoch=E[,step=S][,once=FILE]"
        ) from None


def worker_env() -> dict:
    """The Train workers' runtime env: MCC_FAULT passed on from the driver's environment (a
    worker process does not inherit it: the raylet starts it)."""
    fault = os.environ.get(FAULT_ENV)
    return {"env_vars": {FAULT_ENV: fault}} if fault else {}


def _inject(batches: Iterator, fault: Fault | None, epoch: int, rank: int) -> Iterator:
    for step, b in enumerate(batches):
        if fault and (fault.rank, fault.epoch, fault.step) == (rank, epoch, step):
            if not (fault.once and Path(fault.once).exists()):
                if fault.once:
                    Path(fault.once).write_text(f"killed rank {rank} epoch {epoch} step {step}\n")
                os.kill(os.getpid(), signal.SIGKILL)
        yield b


def checkpoint_dirs(storage_path: str, name: str) -> tuple[pyarrow.fs.FileSystem, list[str]]:
    """The run's Ray checkpoint folders, newest first (their names are timestamps)."""
    fs, root = pyarrow.fs.FileSystem.from_uri(storage_path)
    info = fs.get_file_info(pyarrow.fs.FileSelector(f"{root}/{name}", allow_not_found=True))
    dirs = [
        i.path
        for i in info
        if i.base_name.startswith("checkpoint_") and i.type == pyarrow.fs.FileType.Directory
    ]
    return fs, sorted(dirs, reverse=True)


def latest_checkpoint(storage_path: str, name: str) -> tuple[ray.train.Checkpoint, dict] | None:
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
        from mcc.knn import knn
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


@dataclass(frozen=True)
class WorkerRun:
    """The settings every Train worker of one pretraining gets (train_loop_config["run"],
    built by tune/train.py)."""

    cfg: PretrainConfig
    layout: Layout
    bodies: int  # the dataset's most bodies per sample: every clip is padded to it
    raw: Any  # the training rows: a materialized ray.data.Dataset (tune.data.read_train)
    num_samples: int
    storage: tuple[str, str]  # (storage path, Train run name): where the checkpoints are
    sampling: str  # ray-data (Ray Data tasks) | worker (in this process)
    data_cpus: float  # CPUs for the Ray Data tasks of each worker's epochs
    bn_mode: str  # per-worker | sync
    threads: int  # torch threads per worker
    objective: str | None = None  # val_knn: score each epoch on the validation carve
    eval_overrides: dict = field(default_factory=dict)  # the objective's EvalConfig values
    epoch_lines: bool = True  # print one line per epoch (under Tune tune/progress.py does)


@dataclass
class Worker:
    """One worker's training state: `model` is the plain module (queue, encoder, weights to
    save), `ddp` what trains (the DDP wrapper when there are several workers)."""

    model: torch.nn.Module
    ddp: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    start: int  # the first epoch this process runs (> 0: resumed from a checkpoint)
    history: list[dict]  # every epoch's metrics so far, restored ones included
    rank: int
    world: int
    nodes: int


def restore(run: WorkerRun) -> tuple[Any, Any, Any, int, list[dict]]:
    """Model, optimiser and schedule, from the newest checkpoint in the storage when there is
    one: it holds every checkpoint Ray Train recorded and the ones it had not yet recorded
    when a worker or the job was killed. Also the first epoch to run and the history."""
    seed_everything(run.cfg.seed)
    model, opt, sched = build_training(run.cfg, run.layout)
    found = latest_checkpoint(*run.storage)
    if found is None:
        return model, opt, sched, 0, []
    state = found[1]
    start = restore_training(state, run.cfg, model, opt, sched, state["path"])
    return model, opt, sched, start, state.get("history", [])[:start]


def setup(run: WorkerRun, rank: int, world: int) -> Worker:
    """Restore or build the model, put it on this worker's device and wrap it for DDP."""
    torch.set_num_threads(run.threads)
    model, opt, sched, start, history = restore(run)
    model = use_bn_mode(model, run.bn_mode).to(ray.train.torch.get_device())
    ddp = model
    if world > 1:
        # Buffers are not broadcast: the queue is kept identical by the all-gather, and
        # per-worker batch-norm statistics are what bn_mode=per-worker means.
        ddp = DistributedDataParallel(model, broadcast_buffers=False)
    # Ray node ids, not node ranks: Train ranks nodes by IP, and test clusters share one IP.
    node = torch.tensor([int(ray.get_runtime_context().get_node_id()[:15], 16)])
    nodes = len(set((_all_gather if world > 1 else identity)(node).tolist()))
    return Worker(model, ddp, opt, sched, start, history, rank, world, nodes)


def epoch_streams(run: WorkerRun, w: Worker) -> Iterator[Iterator[dict]]:
    """This worker's batches of each epoch from w.start on: sampled in this process from
    all samples (sampling=worker), or by Ray Data tasks."""
    cfg, stop = run.cfg, run.cfg.optim.epochs
    if run.sampling == "worker":
        samples = local_samples(run.raw, run.num_samples, cfg, run.layout)
        coords = run.layout.coord_channels
        return (
            pretrain_batches(samples, cfg, e, run.bodies, coords, w.rank, w.world)
            for e in range(w.start, stop)
        )

    def stream(epoch: int):
        return epoch_batches(run.raw, run.num_samples, cfg, run.layout, run.bodies, epoch,
                             w.rank, w.world, run.data_cpus)  # fmt: skip

    # enough batches ahead to cover the next epoch's sort (about 5 s here)
    return epochs_ahead(stream, w.start, stop, depth=max(8, 512 // cfg.optim.batch_size))


def train_epoch(w: Worker, batches, cfg: PretrainConfig, epoch: int, bn_mode: str) -> dict:
    """One epoch of `mcc.train.run_epoch` across the workers (all-gathered keys, tallies
    summed over workers) and its metrics, with the queue check and where this process began."""
    several = w.world > 1
    metrics = run_epoch(
        w.ddp,
        w.opt,
        w.sched,
        batches,
        cfg,
        epoch,
        gather=_all_gather if several else identity,
        bn_mode=bn_mode,
        total=_sum_over_workers if several else None,
    )
    metrics["queue_spread"] = _queue_spread(w.model)
    metrics["workers"] = w.world
    metrics["nodes"] = w.nodes
    metrics["started_at_epoch"] = w.start  # > 0: this process resumed from a checkpoint
    return metrics


def report_epoch(run: WorkerRun, w: Worker, epoch: int, metrics: dict) -> None:
    """Record the epoch: its line (rank 0), rank 0's checkpoint with the history so far, and
    every rank's report to Ray Train."""
    w.history.append(metrics)
    if w.rank == 0 and run.epoch_lines:
        print(epoch_line(metrics, run.cfg.optim.epochs), flush=True)
    with tempfile.TemporaryDirectory() as d:
        checkpoint = None
        if w.rank == 0:
            state = training_state(run.cfg, run.layout, run.bodies, epoch, w.model, w.opt,
                                   w.sched)  # fmt: skip
            state["history"] = w.history  # the epochs' metrics travel with the checkpoint
            save_checkpoint(Path(d) / CHECKPOINT_FILE, state)
            checkpoint = ray.train.Checkpoint.from_directory(d)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_loop(config: dict) -> None:
    """Ray Train's `train_loop_per_worker`; config["run"] is the run's WorkerRun."""
    run: WorkerRun = config["run"]
    _quiet_train_reports()
    ctx = ray.train.get_context()
    w = setup(run, ctx.get_world_rank(), ctx.get_world_size())
    epochs = epoch_streams(run, w)
    objective = None
    if run.objective == "val_knn" and w.rank == 0:
        objective = ValidationKnn(run.cfg, run.eval_overrides)
    if w.start >= run.cfg.optim.epochs and w.history:
        # Nothing left to train (a resumed run that had finished): report the last epoch
        # again, so a Tune trial restored around this run still gets its final metrics.
        ray.train.report(w.history[-1])
    fault, device = fault_from_env(), ray.train.torch.get_device()
    for epoch, batches in zip(range(w.start, run.cfg.optim.epochs), epochs):
        batches = _to_device(_inject(batches, fault, epoch, w.rank), device)
        metrics = train_epoch(w, batches, run.cfg, epoch, run.bn_mode)
        if objective is not None:
            metrics["val_knn_top1"] = objective(w.model.encoder)
        report_epoch(run, w, epoch, metrics)
