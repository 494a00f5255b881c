"""MCC pretraining in one process: batches, the training step of Eq. 4, the epoch loop.

`training_step` is the unit a distributed worker calls unchanged: it takes the function that
gathers keys from all workers (identity here) and the batch-norm mode.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mcc.checkpoint import CheckpointError, load_checkpoint, load_module, save_checkpoint
from mcc.config import ConfigError, OptimConfig, PretrainConfig, from_dict, to_dict
from mcc.data import load_splits
from mcc.losses import info_nce, interpolation_loss, total_loss, triplet_loss
from mcc.model import MCC
from mcc.runs import RunDir
from mcc.sampling import mcc_views, pad_bodies
from mcc.shards import Sample

BN_MODES = ("per-worker", "sync")


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def to_model_layout(x: np.ndarray) -> np.ndarray:
    """(..., M, T, V, C) -> (..., C, T, V, M), the backbones' input order."""
    return np.moveaxis(x, (-4, -1), (-1, -4))


def collate_views(views: list[dict], bodies: int, ids: list[int]) -> dict[str, torch.Tensor]:
    """Stack per-sample views into model-layout tensors; ids become a long tensor."""
    batch = {}
    for key in views[0]:
        if key == "wrapped":
            batch[key] = torch.tensor(sum(int(v[key]) for v in views))
            continue
        arr = np.stack([pad_bodies(v[key], bodies) for v in views])
        batch[key] = torch.from_numpy(np.ascontiguousarray(to_model_layout(arr)))
    batch["ids"] = torch.tensor(ids, dtype=torch.long)
    return batch


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> list[int]:
    """Seed material of one epoch on one worker: reproducible, distinct per (epoch, rank)."""
    return [seed, epoch, rank]


def pretrain_batches(
    samples: list[Sample],
    cfg: PretrainConfig,
    epoch: int,
    bodies: int,
    coords,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of MCC batches. The order is a permutation shared by all ranks (seed, epoch);
    each rank takes every world_size-th batch slot; clip sampling is seeded per rank."""
    bs = cfg.optim.batch_size
    per_step = bs * world_size
    if len(samples) < per_step:
        raise ConfigError(
            f"{len(samples)} training samples are fewer than one step's batch "
            f"(optim.batch_size={bs} x {world_size} workers)"
        )
    order = np.random.default_rng([cfg.seed, epoch]).permutation(len(samples))
    rng = np.random.default_rng(epoch_seed(cfg.seed, epoch, rank))
    for step in range(len(samples) // per_step):
        idx = order[step * per_step + rank * bs : step * per_step + (rank + 1) * bs]
        views = [mcc_views(samples[i].joints, rng, cfg.sampling, cfg.loss, coords) for i in idx]
        yield collate_views(views, bodies, idx.tolist())


def training_step(
    model: MCC,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    cfg: PretrainConfig,
    gather: Callable[[torch.Tensor], torch.Tensor] = identity,
    bn_mode: str = "per-worker",
) -> dict[str, float]:
    """One step of Eq. 4 on a batch of views; returns the loss terms as floats.

    A term with weight 0 is not computed. The queue receives gather(k) after the update
    (MoCo's order), so every worker's queue gets the keys of all workers. bn_mode
    `per-worker` normalises each worker's batch alone; `sync` expects a model whose
    batch-norm layers were converted with `use_bn_mode(model, "sync")`.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode {bn_mode!r} is not allowed; choose one of {BN_MODES}")
    if bn_mode == "sync" and any(
        type(m) is not nn.SyncBatchNorm and isinstance(m, nn.modules.batchnorm._BatchNorm)
        for m in model.modules()
    ):
        raise ValueError("bn_mode=sync: convert the model first with use_bn_mode(model, 'sync')")
    net = model.module if hasattr(model, "module") else model
    lc = cfg.loss
    weights = {"triplet": lc.triplet, "nce": lc.nce, "interp": lc.interp}
    has_pos = "positive" in batch
    clips = ["anchor"]
    if has_pos and (lc.triplet > 0 or lc.interp > 0):
        clips.append("positive")
    if lc.triplet > 0:
        clips.append("negative")
    model.train()
    terms: dict[str, torch.Tensor] = {}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    n = batch["anchor"].shape[0]
    rec = [c for c in ("anchor", "positive") if c in clips] if lc.interp > 0 else []
    with autocast:
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
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if lc.nce > 0:
        net.queue.enqueue(gather(k), gather(batch["ids"]))
    return {"loss": loss.item(), **{name: v.item() for name, v in terms.items()}}


def use_bn_mode(model: nn.Module, mode: str) -> nn.Module:
    if mode == "sync":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if mode != "per-worker":
        raise ValueError(f"bn_mode {mode!r} is not allowed; choose one of {BN_MODES}")
    return model


def lr_factor(cfg: OptimConfig, epoch: int) -> float:
    """Multiplier of the base lr in `epoch` (0-based): linear warmup, then step (x0.1 at each
    milestone, ST-GCN's recipe) or cosine to 0."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.schedule == "step":
        return 0.1 ** sum(epoch >= m for m in cfg.milestones)
    span = max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))


def make_optimizer(params, cfg: OptimConfig):
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


def pretrain(
    cfg: PretrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_after_epoch: int | None = None,
) -> dict:
    """Pretrain with MCC on cfg.data's training split; writes the run folder `out`.

    resume=True continues from out/checkpoint.pt; the result equals an uninterrupted run with
    the same seed, because each epoch's randomness is seeded by (seed, epoch).
    stop_after_epoch simulates a kill (tests).
    """
    run = RunDir(out)
    if run.checkpoint.exists() and not resume:
        raise ConfigError(
            f"{run.path} already holds a run; pass --resume to continue it or choose another --out"
        )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data)
    layout, bodies = splits.manifest.layout, splits.manifest.max_bodies
    train = splits.train
    if cfg.loss.nce > 0 and cfg.loss.queue_size >= len(train):
        warnings.warn(
            f"loss.queue_size={cfg.loss.queue_size} >= {len(train)} training samples: the "
            f"queue holds several keys per sample (own stale keys are masked)",
            stacklevel=2,
        )
    model = MCC(cfg, layout)
    opt, sched = make_optimizer(model.online_parameters(), cfg.optim)
    start = 0
    if resume and run.checkpoint.exists():
        state = load_checkpoint(run.checkpoint)
        saved = from_dict(PretrainConfig, state["config"])
        if saved != cfg:
            raise CheckpointError(
                f"{run.checkpoint} was written with another config; resume "
                f"with the same --set values"
            )
        load_module(model, state["model"], f"checkpoint {run.checkpoint}")
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start = state["epoch"] + 1
        print(f"resuming {run.path} after epoch {state['epoch'] + 1}/{cfg.optim.epochs}")
    run.write_config(to_dict(cfg))
    run.truncate_metrics(start)

    def save(epoch: int) -> None:
        """The full training state after `epoch` (-1: untrained), written atomically."""
        state = {
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
        save_checkpoint(run.checkpoint, state)

    tb = _tensorboard(run.path)
    coords = layout.coord_channels
    steps = len(train) // cfg.optim.batch_size
    for epoch in range(start, cfg.optim.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout etc.: seeded per epoch
        t0 = time.time()
        sums: dict[str, float] = {}
        wrapped = 0
        batches = pretrain_batches(train, cfg, epoch, bodies, coords)
        bar = _progress(batches, steps, f"epoch {epoch + 1}/{cfg.optim.epochs}", progress)
        for batch in bar:
            out_terms = training_step(model, batch, opt, cfg)
            wrapped += int(batch["wrapped"])
            for k, v in out_terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if progress:
                bar.set_postfix(loss=f"{out_terms['loss']:.3f}")
        sched.step()
        dt = time.time() - t0
        clips_per_epoch = steps * cfg.optim.batch_size * (1 + (cfg.sampling.positive == "speed"))
        last = {
            "epoch": epoch,
            **{k: v / steps for k, v in sums.items()},
            "lr": opt.param_groups[0]["lr"],
            "wrapped_fraction": wrapped / max(1, clips_per_epoch),
            "epoch_time_s": round(dt, 3),
            "clips_per_s": round(3 * steps * cfg.optim.batch_size / dt, 2),
        }
        run.log(last)
        if tb is not None:
            for k, v in last.items():
                if k != "epoch":
                    tb.add_scalar(f"pretrain/{k}", v, epoch)
        save(epoch)
        print(
            f"epoch {epoch + 1}/{cfg.optim.epochs}  loss {last.get('loss', 0):.4f}  "
            + "  ".join(f"{k} {last[k]:.4f}" for k in ("triplet", "nce", "interp") if k in last)
            + f"  ({dt:.1f}s)",
            flush=True,
        )
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            return {"stopped_after_epoch": epoch}
    if tb is not None:
        tb.close()
    if not run.checkpoint.exists():  # epochs=0: an untrained encoder, still a valid checkpoint
        save(-1)
    history = run.metrics()
    result = {
        "kind": "pretrain",
        "dataset": splits.manifest.name,
        "train_samples": len(train),
        "epochs": cfg.optim.epochs,
        "final": history[-1] if history else {},
        "first_loss": history[0].get("loss") if history else None,
        "checkpoint": str(run.checkpoint),
    }
    return run.write_result(
        result, cfg.seed, wall_time=sum(h.get("epoch_time_s", 0) for h in history)
    )
