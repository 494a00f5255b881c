"""MCC pretraining in one process: batches, the training step of Eq. 4, the epoch loop.

`training_step` is the unit a distributed worker calls unchanged: it takes the function that
gathers keys from all workers (identity here), the batch-norm mode and the loop's precision
(`mcc.device.Amp`). Batches are sampled on the CPU, in DataLoader worker processes when
asked (`pretrain_epochs`: on a GPU by default), and moved to the model's device by
`to_device` (from pinned memory, without blocking, on a GPU).

cfg.pretext picks the objective: `mcc`, or one of Table 4's comparison pretexts (order,
jigsaw, pace: mcc.pretexts). The choice is made here, in `view_arrays`, `training_step` and
`build_training`, so the epoch loop, checkpoints, resume and the Ray layer (which calls these
functions) are the same for every pretext.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mcc import files
from mcc.checkpoint import (
    CheckpointError,
    check_training_state,
    config_of,
    load_checkpoint,
    load_module,
    save_checkpoint,
)
from mcc.config import EXECUTION, ConfigError, OptimConfig, PretrainConfig, to_dict
from mcc.data import load_splits
from mcc.device import Amp, describe, loader_workers, resolve_device
from mcc.layouts import Layout
from mcc.losses import info_nce, interpolation_loss, total_loss, triplet_loss
from mcc.model import MCC
from mcc.pretexts import PretextModel, pretext_loss
from mcc.runs import RunDir
from mcc.sampling import (
    body_regions,
    jigsaw_views,
    mcc_views,
    order_views,
    pace_views,
    pad_bodies,
    stretch,
)
from mcc.shards import Sample, read_manifest

BN_MODES = ("per-worker", "sync")


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def to_model_layout(x: np.ndarray) -> np.ndarray:
    """(..., M, T, V, C) -> (..., C, T, V, M), the backbones' input order."""
    return np.moveaxis(x, (-4, -1), (-1, -4))


@lru_cache(maxsize=8)
def _jigsaw_regions(data_path: str) -> tuple[np.ndarray, np.ndarray]:
    """The jigsaw's body regions of the dataset's layout, read from its manifest once per
    process: the Ray Data stage hands `view_arrays` the coordinate channels, not the layout."""
    return body_regions(read_manifest(data_path).layout)


def view_arrays(
    seq: np.ndarray,
    index: int,
    cfg: PretrainConfig,
    epoch: int,
    bodies: int,
    coords: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """The views of one training sample in one epoch for cfg.pretext, padded to `bodies`
    persons and in model layout (C, T, V, M); `wrapped` is a count and `label` (comparison
    pretexts) an int64 class. The randomness is seeded by (seed, epoch, sample index) alone, so
    a sample's views do not depend on which worker draws them or in which order: the
    single-process loop and the Ray Data stage produce the same arrays."""
    rng = np.random.default_rng([cfg.seed, epoch, index])
    seq = stretch(seq, cfg.sampling.min_frames)
    if cfg.pretext == "mcc":
        views = mcc_views(seq, rng, cfg.sampling, cfg.loss, coords)
    elif cfg.pretext == "order":
        views = order_views(seq, rng, cfg.sampling)
    elif cfg.pretext == "jigsaw":
        views = jigsaw_views(seq, rng, cfg.sampling, _jigsaw_regions(cfg.data.path))
    elif cfg.pretext == "pace":
        views = pace_views(seq, rng, cfg.sampling)
    else:
        raise ConfigError(f"pretext={cfg.pretext!r} is not allowed")
    out = {
        k: np.ascontiguousarray(to_model_layout(pad_bodies(v, bodies)))
        for k, v in views.items()
        if k not in ("wrapped", "label")
    }
    out["wrapped"] = np.int64(views["wrapped"])
    if "label" in views:
        out["label"] = np.int64(views["label"])
    return out


def collate_views(views: list[dict], ids: np.ndarray) -> dict[str, torch.Tensor]:
    """Stack per-sample view arrays (from `view_arrays`) into one batch of tensors."""
    return batch_tensors({k: np.stack([v[k] for v in views]) for k in views[0]}, ids)


def batch_tensors(arrays: dict[str, np.ndarray], ids: np.ndarray) -> dict[str, torch.Tensor]:
    """Stacked view arrays -> the batch `training_step` takes (`wrapped` summed, ids and
    pretext labels long)."""
    batch = {
        # a writable copy: arrays from Ray's object store are read-only (torch warns)
        k: torch.from_numpy(np.array(v, dtype=np.float32, order="C"))
        for k, v in arrays.items()
        if k not in ("wrapped", "index", "label")
    }
    batch["wrapped"] = torch.tensor(int(np.sum(arrays["wrapped"])))
    batch["ids"] = torch.from_numpy(np.array(ids, dtype=np.int64))  # copy: Ray arrays are read-only
    if "label" in arrays:
        batch["label"] = torch.from_numpy(np.array(arrays["label"], dtype=np.int64))
    return batch


def epoch_plan(
    num_samples: int, cfg: PretrainConfig, epoch: int, world_size: int = 1
) -> np.ndarray:
    """Which training samples each worker sees in `epoch`, in batch order: (world_size,
    steps * batch_size) sample indices. One permutation seeded by (seed, epoch) is shared by
    all workers; step s gives worker r the slots [s * B * W + r * B, ... + B). The remainder
    that does not fill a step is dropped."""
    bs = cfg.optim.batch_size
    per_step = bs * world_size
    if num_samples < per_step:
        raise ConfigError(
            f"{num_samples} training samples are fewer than one step's batch "
            f"(optim.batch_size={bs} x {world_size} workers)"
        )
    steps = num_samples // per_step
    order = np.random.default_rng([cfg.seed, epoch]).permutation(num_samples)
    return (
        order[: steps * per_step]
        .reshape(steps, world_size, bs)
        .transpose(1, 0, 2)
        .reshape(world_size, steps * bs)
    )


def pretrain_batches(
    samples: list[Sample],
    cfg: PretrainConfig,
    epoch: int,
    bodies: int,
    coords: tuple[int, ...],
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of batches for worker `rank` (see `epoch_plan` and `view_arrays`), sampled
    in this process."""
    batches = PlannedBatches(samples, cfg, bodies, coords, epoch, epoch + 1, rank, world_size)
    return (batches[b] for b in range(len(batches)))


class PlannedBatches(torch.utils.data.Dataset):
    """Every batch of epochs [start, stop) for worker `rank`, item k being the k-th in
    training order. Each batch depends on its index alone (`epoch_plan`, `view_arrays`), so
    DataLoader worker processes can build them in any order with the same result."""

    def __init__(self, samples, cfg, bodies, coords, start, stop, rank=0, world_size=1):
        self.samples, self.cfg, self.bodies, self.coords = samples, cfg, bodies, coords
        self.start, self.stop, self.rank, self.world_size = start, stop, rank, world_size
        self.steps = len(samples) // (cfg.optim.batch_size * world_size)
        self._plan: tuple[int, np.ndarray] | None = None
        if stop > start:
            epoch_plan(len(samples), cfg, start, world_size)  # fewer than one batch: its error

    def __len__(self) -> int:
        return self.steps * max(0, self.stop - self.start)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        epoch, step = self.start + k // self.steps, k % self.steps
        if self._plan is None or self._plan[0] != epoch:
            plan = epoch_plan(len(self.samples), self.cfg, epoch, self.world_size)[self.rank]
            self._plan = (epoch, plan)
        bs = self.cfg.optim.batch_size
        idx = self._plan[1][step * bs : (step + 1) * bs]
        views = [view_arrays(self.samples[i].joints, i, self.cfg, epoch, self.bodies,
                             self.coords) for i in idx]  # fmt: skip
        return collate_views(views, idx)


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # a sampling process: numpy work, no torch thread pool


def pretrain_epochs(
    samples: list[Sample],
    cfg: PretrainConfig,
    bodies: int,
    coords: tuple[int, ...],
    start: int,
    workers: int = 0,
    pin: bool = False,
) -> Iterator[Iterator[dict[str, torch.Tensor]]]:
    """The batches of epochs start.. of a single-process run, one iterator per epoch (each
    to be used up before the next). With `workers` > 0 they are sampled in that many
    DataLoader processes that stay up across epochs and prefetch; `pin` puts them in pinned
    memory for asynchronous copies to a GPU. The batches equal `pretrain_batches`' either way."""
    planned = PlannedBatches(samples, cfg, bodies, coords, start, cfg.optim.epochs)
    if workers == 0 and not pin:
        stream = (planned[k] for k in range(len(planned)))
    else:
        stream = iter(torch.utils.data.DataLoader(
            planned, batch_size=None, num_workers=workers, pin_memory=pin,
            worker_init_fn=_one_thread if workers else None,
            prefetch_factor=4 if workers else None,
        ))  # fmt: skip
    for _ in range(start, cfg.optim.epochs):
        yield itertools.islice(stream, planned.steps)


def to_device(batches: Iterable[dict], device: torch.device) -> Iterator[dict]:
    """Each batch on `device`; from pinned memory the copies do not block (batches pinned by
    their loader stay as they are; others are pinned here first when the device is a GPU)."""
    cuda = device.type == "cuda"
    for b in batches:
        yield {k: (v.pin_memory() if cuda and not v.is_pinned() else v).to(device,
                                                                             non_blocking=cuda)
               for k, v in b.items()}  # fmt: skip


def training_step(
    model: MCC | PretextModel,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    cfg: PretrainConfig,
    gather: Callable[[torch.Tensor], torch.Tensor] = identity,
    bn_mode: str = "per-worker",
    amp: Amp | None = None,
) -> dict[str, float]:
    """One step of Eq. 4 on a batch of views; returns the loss terms as floats.

    A term with weight 0 is not computed. The queue receives gather(k) after the update
    (MoCo's order), so every worker's queue gets the keys of all workers. bn_mode
    `per-worker` normalises each worker's batch alone; `sync` expects a model whose
    batch-norm layers were converted with `use_bn_mode(model, "sync")`. `amp` is the loop's
    precision (default: cfg.precision on the batch's device, which must not need a gradient
    scaler: that lives across steps). A comparison pretext (cfg.pretext != "mcc") takes
    `pretext_step` instead.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode {bn_mode!r} is not allowed; choose one of {BN_MODES}")
    if bn_mode == "sync" and any(
        type(m) is not nn.SyncBatchNorm and isinstance(m, nn.modules.batchnorm._BatchNorm)
        for m in model.modules()
    ):
        raise ValueError("bn_mode=sync: convert the model first with use_bn_mode(model, 'sync')")
    amp = amp or step_amp(cfg, batch["anchor"].device)
    if cfg.pretext != "mcc":
        return pretext_step(model, batch, optimizer, cfg, amp)
    net = model.module if hasattr(model, "module") else model
    lc = cfg.loss
    weights = {"triplet": lc.triplet, "nce": lc.nce, "interp": lc.interp}
    if not any(w > 0 for w in weights.values()):
        # every term off: no pretraining, the control of Table 1 and of `sweep.py --confirm`.
        # No forward pass either, so batch-norm statistics stay at their initial values too.
        return {"loss": 0.0}
    has_pos = "positive" in batch
    clips = ["anchor"]
    if has_pos and (lc.triplet > 0 or lc.interp > 0):
        clips.append("positive")
    if lc.triplet > 0:
        clips.append("negative")
    model.train()
    terms: dict[str, torch.Tensor] = {}
    n = batch["anchor"].shape[0]
    rec = [c for c in ("anchor", "positive") if c in clips] if lc.interp > 0 else []
    with amp.autocast():
        z_all, pred = model(torch.cat([batch[c] for c in clips]), n_decode=n * len(rec))
        z = dict(zip(clips, z_all.float().split(n)))
        if lc.triplet > 0:
            terms["triplet"] = triplet_loss(
                z["anchor"], z.get("positive"), z["negative"], lc.margin
            )
        if lc.nce > 0:
            net.momentum_update(lc.momentum)
            k = net.key_embed(batch["positive"] if has_pos else batch["anchor"]).float()
            terms["nce"] = info_nce(
                z["anchor"], k, net.queue.keys.clone(), lc.tau, net.queue.ids.clone(), batch["ids"]
            )
        if rec:
            coords = list(net.layout.coord_channels)
            target = torch.cat([batch[f"{c}_target"][:, coords] for c in rec])
            terms["interp"] = interpolation_loss(pred.float(), target)
    if not terms:
        return {"loss": 0.0}
    loss = total_loss(terms, weights)
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"loss became {loss.item()} ({ {k: v.item() for k, v in terms.items()} }); "
            f"lower optim.lr or check the data"
        )
    amp.step(loss, optimizer)
    if lc.nce > 0:
        net.queue.enqueue(gather(k), gather(batch["ids"]))
    return {"loss": loss.item(), **{name: v.item() for name, v in terms.items()}}


def pretext_step(
    model: PretextModel,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    cfg: PretrainConfig,
    amp: Amp | None = None,
) -> dict[str, float]:
    """One step of a comparison pretext: cross-entropy of the head's logits on the rearranged
    clips `anchor` against `label`; returns the loss and the batch's pretext accuracy (%)."""
    model.train()
    amp = amp or step_amp(cfg, batch["anchor"].device)
    with amp.autocast():
        logits = model(batch["anchor"])
    loss, acc = pretext_loss(logits.float(), batch["label"])
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"pretext={cfg.pretext}: loss became {loss.item()}; lower optim.lr or check the data"
        )
    amp.step(loss, optimizer)
    return {"loss": loss.item(), "pretext_loss": loss.item(), "pretext_acc": acc}


def step_amp(cfg: PretrainConfig, device: torch.device) -> Amp:
    """The precision of a step called without a loop's Amp: one without a gradient scaler."""
    amp = Amp.create(device, cfg.precision)
    if amp.scaler is not None:
        raise ValueError(
            f"precision {amp.precision} on {device} scales gradients across steps: pass the "
            f"training loop's amp=Amp.create(device, cfg.precision) to every step"
        )
    return amp


def use_bn_mode(model: nn.Module, mode: str) -> nn.Module:
    if mode == "sync":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if mode != "per-worker":
        raise ValueError(f"bn_mode {mode!r} is not allowed; choose one of {BN_MODES}")
    return model


def lr_factor(cfg: OptimConfig, epoch: int) -> float:
    """Multiplier of the base lr in `epoch` (0-based): linear warmup, then step (x0.1 at each
    milestone, ST-GCN's recipe), cosine to 0, or constant."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return 0.1 ** sum(epoch >= m for m in cfg.milestones)
    span = max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))


def make_optimizer(
    params: Iterable[nn.Parameter], cfg: OptimConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """SGD with momentum (Sec. 4.2) or Adam (L2 weight decay), with the epoch-wise schedule."""
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(cfg, e))
    return opt, sched


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(path / "tb"))


def _log_scalars(tb, prefix: str, metrics: dict) -> None:
    """One epoch's metrics line as TensorBoard scalars `prefix/KEY` (no-op without a writer)."""
    if tb is None:
        return
    for k, v in metrics.items():
        if k != "epoch":
            tb.add_scalar(f"{prefix}/{k}", v, metrics["epoch"])


def build_training(cfg: PretrainConfig, layout: Layout):
    """The pretraining model (MCC, or a comparison pretext's encoder + head), its optimiser
    and LR schedule, freshly initialised from torch's RNG."""
    model = MCC(cfg, layout) if cfg.pretext == "mcc" else PretextModel(cfg, layout)
    opt, sched = make_optimizer(model.online_parameters(), cfg.optim)
    return model, opt, sched


def training_state(
    cfg: PretrainConfig, layout, bodies: int, epoch: int, model, opt, sched, amp: Amp | None = None
):
    """The full training state after `epoch` (-1: untrained): what a checkpoint holds, with
    the device and precision it was trained at (and the fp16 gradient scaler's state)."""
    return {
        **(amp.record() if amp is not None else {}),
        "kind": "pretrain",
        "config": to_dict(cfg),
        "layout": layout.to_json(),
        "max_bodies": bodies,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": rng_state(),
    }


def restore_training(
    state: dict, cfg: PretrainConfig, model, opt, sched, source: str, amp: Amp | None = None
) -> int:
    """Load a `training_state` into fresh parts (on any device: the optimiser's state follows
    the parameters); returns the first epoch still to run. The config must be the same but
    for how it is computed (mcc.config.EXECUTION): a CUDA bf16 run resumes on a CPU."""
    saved = config_of(state, PretrainConfig)
    if dataclasses.replace(saved, **{k: getattr(cfg, k) for k in EXECUTION}) != cfg:
        raise CheckpointError(
            f"{source} was written with another config; resume with the same --set values"
        )
    check_training_state(state, opt, sched, cfg.optim.epochs, source)
    load_module(model, state["model"], f"checkpoint {source}")
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    if amp is not None:
        amp.restore(state)
    return state["epoch"] + 1


def run_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched,
    batches,
    cfg: PretrainConfig,
    epoch: int,
    gather: Callable[[torch.Tensor], torch.Tensor] = identity,
    bn_mode: str = "per-worker",
    total: Callable[[dict[str, float]], dict[str, float]] | None = None,
    progress: bool = False,
    steps: int | None = None,
    amp: Amp | None = None,
) -> dict:
    """One epoch of `training_step` over `batches`, then one LR-schedule step. Returns the
    epoch's metrics: the mean of each loss term, lr, the share of looped clips, time and
    throughput. `total` sums the per-worker tallies over workers (DDP), so the means and
    clips/s are global. `steps` only sizes the progress bar."""
    torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout etc.: seeded per epoch
    t0 = time.time()
    tally: dict[str, float] = {"steps": 0.0, "clips": 0.0, "wrapped": 0.0, "drawn": 0.0}
    bar = _progress(batches, steps, f"epoch {epoch + 1}/{cfg.optim.epochs}", progress)
    per_sample = 1 + (cfg.sampling.positive == "speed")  # clips that can loop
    encoded = 3  # clips through the encoder per sample
    if cfg.pretext != "mcc":
        per_sample = encoded = 1  # one rearranged clip
    for batch in bar:
        terms = training_step(model, batch, opt, cfg, gather=gather, bn_mode=bn_mode, amp=amp)
        n = batch["anchor"].shape[0]
        tally["steps"] += 1
        tally["clips"] += encoded * n
        tally["wrapped"] += int(batch["wrapped"])
        tally["drawn"] += per_sample * n
        for k, v in terms.items():
            tally[k] = tally.get(k, 0.0) + v
        if progress:
            bar.set_postfix(loss=f"{terms['loss']:.3f}")
    sched.step()
    if total is not None:
        tally = total(tally)
    dt = time.time() - t0
    steps_done = max(1.0, tally.pop("steps"))
    clips, wrapped, drawn = tally.pop("clips"), tally.pop("wrapped"), tally.pop("drawn")
    return {
        "epoch": epoch,
        **{k: v / steps_done for k, v in tally.items()},
        "lr": opt.param_groups[0]["lr"],
        "wrapped_fraction": wrapped / max(1.0, drawn),
        "epoch_time_s": round(dt, 3),
        "clips_per_s": round(clips / dt, 2),
    }


def epoch_line(m: dict, epochs: int) -> str:
    """One printed line per epoch."""
    keys = ("triplet", "nce", "interp", "pretext_acc")
    terms = "  ".join(f"{k} {m[k]:.4f}" for k in keys if k in m)
    return (
        f"epoch {m['epoch'] + 1}/{epochs}  loss {m.get('loss', 0):.4f}  {terms}  "
        f"({m['epoch_time_s']:.1f}s)"
    )


def pretrain(
    cfg: PretrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    device: str = "auto",
    workers: int | None = None,
) -> dict:
    """Pretrain with cfg.pretext (MCC by default) on cfg.data's training split; writes the run
    folder `out`.

    resume=True continues from out/checkpoint.pt (written on any device); the result equals
    an uninterrupted run with the same seed on the same device, because each epoch's
    randomness is seeded by (seed, epoch). `device` is mcc.device.resolve_device's; `workers`
    the sampling processes (default: none on the CPU, up to 8 on a GPU).
    """
    run = RunDir(out)
    if run.checkpoint.exists() and not resume:
        raise ConfigError(
            f"{run.location} already holds a run; pass --resume to continue it or choose "
            f"another --out"
        )
    dev = resolve_device(device)
    amp = Amp.create(dev, cfg.precision)
    workers = loader_workers(workers, dev)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data)
    layout, bodies = splits.manifest.layout, splits.manifest.max_bodies
    train = splits.train
    if cfg.pretext == "mcc" and cfg.loss.nce > 0 and cfg.loss.queue_size >= len(train):
        warnings.warn(
            f"loss.queue_size={cfg.loss.queue_size} >= {len(train)} training samples: the "
            f"queue holds several keys per sample (own stale keys are masked)",
            stacklevel=2,
        )
    model, opt, sched = build_training(cfg, layout)
    model.to(dev)  # the same parameters, on the device: the optimiser keeps them
    start = 0
    if resume and run.checkpoint.exists():
        start = restore_training(
            load_checkpoint(run.checkpoint), cfg, model, opt, sched, str(run.checkpoint), amp
        )
        print(f"resuming {run.location} after epoch {start}/{cfg.optim.epochs}")
    run.write_config(to_dict(cfg))
    run.truncate_metrics(start)
    if progress:
        print(f"on {describe(dev)}, precision {amp.precision}, "
              f"{workers or 'no'} sampling process(es)", flush=True)  # fmt: skip

    tb = _tensorboard(run.path)
    coords = layout.coord_channels
    epochs = pretrain_epochs(train, cfg, bodies, coords, start, workers, pin=dev.type == "cuda")
    steps = len(train) // cfg.optim.batch_size
    for epoch, batches in zip(range(start, cfg.optim.epochs), epochs):
        last = run_epoch(model, opt, sched, to_device(batches, dev), cfg, epoch,
                         progress=progress, steps=steps, amp=amp)  # fmt: skip
        run.log(last)
        _log_scalars(tb, "pretrain", last)
        state = training_state(cfg, layout, bodies, epoch, model, opt, sched, amp)
        save_checkpoint(run.checkpoint, state)
        run.publish(run.checkpoint)
        print(epoch_line(last, cfg.optim.epochs), flush=True)
    if tb is not None:
        tb.close()
    if not run.checkpoint.exists():  # epochs=0: an untrained encoder, still a valid checkpoint
        state = training_state(cfg, layout, bodies, -1, model, opt, sched, amp)
        save_checkpoint(run.checkpoint, state)
        run.publish(run.checkpoint)
    history = run.metrics()
    result = {
        "kind": "pretrain",
        "dataset": splits.manifest.name,
        "train_samples": len(train),
        "epochs": cfg.optim.epochs,
        "device": describe(dev),
        "precision": amp.precision,
        "sampling_workers": workers,
        "final": history[-1] if history else {},
        "first_loss": history[0].get("loss") if history else None,
        "checkpoint": files.join(run.location, "checkpoint.pt"),
    }
    return run.write_result(
        result, cfg.seed, wall_time=sum(h.get("epoch_time_s", 0) for h in history)
    )
