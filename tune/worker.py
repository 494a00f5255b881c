"""The Ray Train worker: MCC pretraining under DDP, calling `mcc.train` unchanged.

Every worker builds the same model from the same seed (DDP also broadcasts rank 0's weights)
on its device (`ray.train.torch.get_device()`: its GPU with --use-gpu, else the CPU), restores
the latest Ray Train checkpoint if there is one, and runs `mcc.train.run_epoch` with
 - the all-gather for keys, so every worker's queue receives the keys of all workers in the
   same order and the queues stay identical (checked each epoch: `queue_spread`),
 - the batch-norm mode (`per-worker`, or `sync` with SyncBatchNorm),
 - a sum over workers of the epoch's tallies, so the reported loss is the global mean,
 - the worker's precision (`mcc.device.Amp`: bf16 or fp16 with a gradient scaler on a GPU,
   fp32 on the CPU), kept across epochs and in the checkpoints.
These go through `Collectives`, the worker's only torch.distributed calls, with every tensor
on the worker's device (NCCL, the GPU backend, takes CUDA tensors only); they run whenever
Ray Train has set up the process group, which it does for one worker too, so a 1-GPU run
exercises NCCL as an N-GPU one does.
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

from mcc.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mcc.config import PretrainConfig
from mcc.device import Amp, describe
from mcc.layouts import Layout
from mcc.train import (
    build_training,
    epoch_line,
    identity,
    restore_training,
    run_epoch,
    seed_everything,
    to_device,
    training_state,
    use_bn_mode,
)
from tune.data import epoch_batches, epochs_ahead, stream_epoch, worker_epoch

CHECKPOINT_FILE = "checkpoint.pt"


def on_device(x: torch.Tensor, device: torch.device) -> bool:
    """Whether `x` lives on `device` (a device without an index: any of its kind)."""
    return x.device.type == device.type and device.index in (None, x.device.index)


class Collectives:
    """The worker's torch.distributed calls, with every tensor on `device`, the worker's: NCCL
    (the GPU backend) refuses CPU tensors, so a tensor left on the CPU would fail a GPU run
    at its first collective. Each call checks that first and names the tensor."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def check(self, x: torch.Tensor, what: str) -> torch.Tensor:
        if not on_device(x, self.device):
            raise RuntimeError(
                f"{what} is on {x.device}, not on this worker's device {self.device}: "
                f"torch.distributed collectives (NCCL on GPUs) take tensors on the worker's "
                f"device"
            )
        return x

    def gather(self, x: torch.Tensor, what: str = "a tensor to all-gather") -> torch.Tensor:
        """Every worker's `x`, concatenated in rank order (the same on every worker)."""
        x = self.check(x, what).contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts)

    def total(self, tally: dict[str, float]) -> dict[str, float]:
        """Each tally summed over the workers (float64: counts and sums stay exact)."""
        keys = sorted(tally)
        t = torch.tensor([tally[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(self.check(t, "the epoch's tallies"))
        return dict(zip(keys, t.tolist()))

    def queue_spread(self, net) -> float:
        """Largest difference between this worker's queue and any other worker's (0: the
        same)."""
        if net.queue is None:
            return 0.0
        q = torch.cat([net.queue.keys.flatten().double(), net.queue.ids.double()])
        all_q = self.gather(q.unsqueeze(0), "the queue")
        return float((all_q - all_q[0]).abs().max())

    def count_nodes(self, node_id: str) -> int:
        """How many distinct Ray nodes the workers run on (`node_id`: this worker's, hex).
        Ray node ids, not node ranks: Train ranks nodes by IP, and test clusters share one."""
        node = torch.tensor([int(node_id[:15], 16)], device=self.device)
        return len(set(self.gather(node, "the node id").tolist()))


def collectives(device: torch.device) -> Collectives | None:
    """The worker's Collectives, or None outside a process group (nothing to share)."""
    return Collectives(device) if dist.is_available() and dist.is_initialized() else None


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


# The most pretraining samples in the validation kNN's bank (a seeded, class-stratified
# draw above it): rank 0 never holds the whole dataset to score an epoch.
VAL_KNN_BANK = 4096


def validation_samples(cfg, bank_size: int = VAL_KNN_BANK) -> tuple[list, list]:
    """(bank, validation carve) of the sweep's objective, normalised, in shard order: the
    pretraining split (or a seeded per-class draw of about `bank_size` of it) and the carve
    (`data.val_fraction`), read from the metadata columns first and then only those rows."""
    from mcc.data import per_class_indices
    from mcc.sampling import normalize
    from mcc.shards import read_manifest, read_shard, samples_from_table
    from tune.data import split_column

    manifest = read_manifest(cfg.path)
    col = split_column(manifest, cfg.benchmark)
    meta = [read_shard(cfg.path, sh, columns=["sample_id", "label"], filters=[(col, "=", "train")])
            for sh in manifest.shards]  # fmt: skip
    ids = [i for t in meta for i in t.column("sample_id").to_pylist()]
    labels = [x for t in meta for x in t.column("label").to_pylist()]
    carve = set(per_class_indices(labels, cfg.val_fraction, cfg.val_seed, "data.val_fraction"))
    train = [i for i in range(len(ids)) if i not in carve]
    if len(train) > bank_size:
        fraction = bank_size / len(train)
        draw = per_class_indices([labels[i] for i in train], fraction, cfg.val_seed)
        train = [train[j] for j in draw]
    bank_ids, val_ids = {ids[i] for i in train}, {ids[i] for i in carve}
    bank, val = [], []
    for sh in manifest.shards:
        wanted = [(col, "=", "train"), ("sample_id", "in", sorted(bank_ids | val_ids))]
        for smp in samples_from_table(read_shard(cfg.path, sh, filters=wanted)):
            smp.joints = normalize(smp.joints, manifest.layout, cfg.normalize)
            (bank if smp.sample_id in bank_ids else val).append(smp)
    return bank, val


class ValidationKnn:
    """The sweep's objective: kNN top-1 (%) of the pooled backbone features on the seeded
    validation split carved from the training split (never the test split), with the
    pretraining split as the labelled bank: all of it up to VAL_KNN_BANK samples, a seeded
    class-stratified draw of that many above (`bank`: its size, reported as val_knn_bank).
    Computed on rank 0 after each epoch, on its device."""

    def __init__(
        self, cfg: PretrainConfig, eval_overrides: dict, device: torch.device | None = None
    ) -> None:
        from mcc.config import EvalConfig, apply_overrides
        from mcc.shards import read_manifest

        if cfg.data.val_fraction <= 0:
            raise ValueError("objective val_knn needs data.val_fraction > 0")
        self.model_cfg = cfg.model
        self.manifest = read_manifest(cfg.data.path)
        self.train, self.val = validation_samples(cfg.data)
        self.bank = len(self.train)
        self.cfg = apply_overrides(EvalConfig(), {"data.path": cfg.data.path, **eval_overrides})
        self.device = device or torch.device("cpu")

    def __call__(self, encoder) -> float:
        from mcc.knn import knn
        from mcc.models import build_encoder

        m = self.manifest
        # a plain encoder with the live weights, on the worker's device: kNN recomputes
        # batch-norm statistics, which a SyncBatchNorm (bn_mode sync) would try to share with
        # workers that are not scoring. Its random init (on the CPU, then moved) must not
        # draw from the training's random stream.
        with torch.random.fork_rng(devices=[]):
            enc = build_encoder(self.model_cfg, m.layout).to(self.device)
        enc.load_state_dict({k: v.detach() for k, v in encoder.state_dict().items()})
        with torch.no_grad():
            res = knn(enc, self.train, self.val, self.cfg, m.max_bodies, len(m.classes))
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
    num_samples: int
    storage: tuple[str, str]  # (storage path, Train run name): where the checkpoints are
    # ray-data: the trainer's "train" dataset, streamed | worker: read by each worker |
    # exact: `raw` sorted into `python -m mcc pretrain`'s batches (small data)
    sampling: str
    data_cpus: float  # CPUs for the Ray Data tasks of each worker's epochs (exact)
    bn_mode: str  # per-worker | sync
    threads: int  # torch threads per worker
    objective: str | None = None  # val_knn: score each epoch on the validation carve
    eval_overrides: dict = field(default_factory=dict)  # the objective's EvalConfig values
    raw: Any = None  # exact: the materialized training rows (tune.data.read_train)
    keys: Any = None  # worker: the sorted int64 keys of the pretraining rows
    epoch_lines: bool = True  # print one line per epoch (under Tune tune/progress.py does)


@dataclass
class Worker:
    """One worker's training state: `model` is the plain module (queue, encoder, weights to
    save), `ddp` what trains (the DDP wrapper when there are several workers), `amp` the
    precision of every step (its fp16 gradient scaler lives across steps and checkpoints),
    `comm` the collectives (None outside a process group)."""

    model: torch.nn.Module
    ddp: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    start: int  # the first epoch this process runs (> 0: resumed from a checkpoint)
    history: list[dict]  # every epoch's metrics so far, restored ones included
    rank: int
    world: int
    nodes: int
    device: torch.device
    amp: Amp
    comm: Collectives | None


def restore(run: WorkerRun, device: torch.device, amp: Amp) -> tuple[Any, ...]:
    """Model (in the run's batch-norm mode, on `device`), optimiser and schedule, from the
    newest checkpoint in the storage when there is one: it holds every checkpoint Ray Train
    recorded and the ones it had not yet recorded when a worker or the job was killed. Also
    the first epoch to run and the history; `amp` takes the checkpoint's gradient scaler."""
    seed_everything(run.cfg.seed)
    model, opt, sched = build_training(run.cfg, run.layout)
    # on the device before the optimiser's state loads: that state follows the parameters
    model = use_bn_mode(model, run.bn_mode).to(device)
    found = latest_checkpoint(*run.storage)
    if found is None:
        return model, opt, sched, 0, []
    state = found[1]
    start = restore_training(state, run.cfg, model, opt, sched, state["path"], amp)
    return model, opt, sched, start, state.get("history", [])[:start]


def setup(run: WorkerRun, rank: int, world: int) -> Worker:
    """Restore or build the model on this worker's device, wrap it for DDP (Ray's
    prepare_model: device_ids on a GPU, no wrapper for one worker) and count the nodes."""
    torch.set_num_threads(run.threads)
    device = ray.train.torch.get_device()
    amp = Amp.create(device, run.cfg.precision)
    model, opt, sched, start, history = restore(run, device, amp)
    # Buffers are not broadcast: the queue is kept identical by the all-gather, and
    # per-worker batch-norm statistics are what bn_mode=per-worker means.
    ddp = ray.train.torch.prepare_model(
        model, parallel_strategy_kwargs={"broadcast_buffers": False}
    )
    comm = collectives(device)
    nodes = comm.count_nodes(ray.get_runtime_context().get_node_id()) if comm else 1
    return Worker(model, ddp, opt, sched, start, history, rank, world, nodes, device, amp, comm)


def epoch_streams(run: WorkerRun, w: Worker) -> Iterator[Iterator[dict]]:
    """This worker's batches of each epoch from w.start on (tune/data.py: the three
    samplings), produced by one background thread that runs ahead across epoch boundaries,
    so the next epoch's first batches are ready when the current epoch's last one ends."""
    cfg, stop = run.cfg, run.cfg.optim.epochs
    if run.sampling == "ray-data":
        shard = ray.train.get_dataset_shard("train")

        def stream(epoch: int):
            return stream_epoch(shard, cfg, run.layout, run.bodies, epoch, w.rank)

    elif run.sampling == "worker":

        def stream(epoch: int):
            return worker_epoch(cfg, run.keys, run.layout, run.bodies, epoch, w.rank, w.world)

    else:

        def stream(epoch: int):
            return epoch_batches(run.raw, run.num_samples, cfg, run.layout, run.bodies, epoch,
                                 w.rank, w.world, run.data_cpus)  # fmt: skip

    # enough batches ahead to cover the next epoch's start (the exact mode's sort: ~5 s here)
    return epochs_ahead(stream, w.start, stop, depth=max(8, 512 // cfg.optim.batch_size))


def train_epoch(w: Worker, batches, cfg: PretrainConfig, epoch: int, bn_mode: str) -> dict:
    """One epoch of `mcc.train.run_epoch` across the workers (all-gathered keys, tallies
    summed over workers) and its metrics, with the queue check and where this process began.
    `batches` are on the worker's device."""
    comm = w.comm
    metrics = run_epoch(
        w.ddp,
        w.opt,
        w.sched,
        batches,
        cfg,
        epoch,
        gather=comm.gather if comm else identity,
        bn_mode=bn_mode,
        total=comm.total if comm else None,
        amp=w.amp,
    )
    metrics["queue_spread"] = comm.queue_spread(w.model) if comm else 0.0
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
                                   w.sched, w.amp)  # fmt: skip
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
    if w.rank == 0 and run.epoch_lines:
        print(f"workers on {describe(w.device)} (rank 0), precision {w.amp.precision}",
              flush=True)  # fmt: skip
    objective = None
    if run.objective == "val_knn" and w.rank == 0:
        objective = ValidationKnn(run.cfg, run.eval_overrides, w.device)
    if w.start > 0 and w.history:
        # Resumed: report the last checkpointed epoch again. A kill can land after its
        # checkpoint and before its report reached Tune, whose scheduler would then never
        # see that epoch (tune/scheduler.py); a run that had finished reports its final
        # metrics to a Tune trial restored around it. A repeat changes no decision.
        ray.train.report(w.history[-1])
    fault = fault_from_env()
    for epoch, batches in zip(range(w.start, run.cfg.optim.epochs), epochs):
        batches = to_device(_inject(batches, fault, epoch, w.rank), w.device)
        metrics = train_epoch(w, batches, run.cfg, epoch, run.bn_mode)
        if objective is not None:
            metrics["val_knn_top1"] = objective(w.model.encoder)
            metrics["val_knn_bank"] = objective.bank
        report_epoch(run, w, epoch, metrics)
