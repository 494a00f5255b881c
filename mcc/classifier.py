"""Training a classifier on an encoder: fine-tuning (everything trained) or the linear
protocol (the encoder frozen), one loop for both; LP-FT (`head_init=probe`); and the labelled
subset of the semi-supervised protocol."""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import torch
import torch.nn.functional as F

from mcc.config import ConfigError, EvalConfig
from mcc.data import per_class_subset
from mcc.device import Amp
from mcc.features import batch_inputs, device_of, precise_batch_norm
from mcc.models import Classifier
from mcc.runs import RunDir
from mcc.shards import Sample
from mcc.train import _log_scalars, _progress, _tensorboard, make_optimizer


def fit_classifier(
    encoder,
    train: list[Sample],
    cfg: EvalConfig,
    bodies: int,
    num_classes: int,
    run: RunDir | None = None,
    progress: bool = True,
    frozen: bool = False,
) -> Classifier:
    """A linear classifier on the encoder's pooled features, trained on `train` with the
    encoder (fine-tuning) or with the encoder frozen (linear protocol): the trained
    Classifier (encoder + fc), on the encoder's device, trained at cfg.precision there. Logs
    each epoch to `run` when given."""
    head = None
    if not frozen and cfg.head_init == "probe" and cfg.optim.epochs > 0:
        # LP-FT: first the linear protocol on a frozen copy (the same run as `--protocol
        # linear` with these settings), then everything from its layer
        probe = fit_classifier(copy.deepcopy(encoder), train, cfg, bodies, num_classes,
                               None, progress, frozen=True)  # fmt: skip
        head = folded_head(probe)
    if frozen:  # the frozen encoder's statistics, as knn's: over the training inputs
        precise_batch_norm(encoder, train, cfg.frames, bodies, cfg.optim.batch_size)
    device = device_of(encoder)
    amp = Amp.create(device, cfg.precision)
    model = Classifier(encoder, num_classes, standardize=frozen).to(device)
    if head is not None:
        model.fc.load_state_dict(head)
    encoder.requires_grad_(not frozen)
    params = model.fc.parameters() if frozen else model.parameters()
    optim = dataclasses.replace(cfg.optim, lr=cfg.linear_lr) if (
        frozen and cfg.linear_lr > 0) else cfg.optim  # fmt: skip
    opt, sched = make_optimizer(params, optim)
    name = "linear" if frozen else "finetune"
    bs = cfg.optim.batch_size
    # run/tb/ as pretraining writes (mcc.train), when tensorboard is installed (extra `tb`)
    tb = _tensorboard(run.path) if run is not None else None
    for epoch in range(cfg.optim.epochs):
        rng = np.random.default_rng([cfg.seed, epoch, 1])
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        order = rng.permutation(len(train))
        model.train()
        if frozen:
            encoder.eval()  # frozen batch-norm statistics too
        t0, total, correct, seen = time.time(), 0.0, 0, 0
        steps = range(0, len(train) - (len(train) % bs if len(train) > bs else 0), bs)
        for i in _progress(steps, len(steps), f"{name} {epoch + 1}/{cfg.optim.epochs}", progress):
            chunk = [train[j] for j in order[i : i + bs]]
            if len(chunk) < 2:
                continue  # batch norm needs two samples
            x = batch_inputs(chunk, cfg.frames, bodies, rng, cfg.crop_min).to(device)
            y = torch.tensor([s.label for s in chunk], device=device)
            with amp.autocast():
                logits = model(x).float()
            loss = F.cross_entropy(logits, y)
            amp.step(loss, opt)
            total += loss.item() * len(chunk)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(chunk)
        sched.step()
        if run is not None:
            last = {
                "epoch": epoch,
                "loss": total / max(1, seen),
                "train_top1": 100.0 * correct / max(1, seen),
                "lr": opt.param_groups[0]["lr"],
                "epoch_time_s": round(time.time() - t0, 3),
            }
            run.log(last)
            _log_scalars(tb, name, last)
    if tb is not None:
        tb.close()
    if not frozen and cfg.optim.epochs > 0:  # 0 epochs: the model as it came
        precise_batch_norm(model, train, cfg.frames, bodies, bs)
    return model


@torch.no_grad()
def folded_head(probe: Classifier) -> dict:
    """The linear layer of a linear-protocol Classifier with its feature standardisation
    folded in: fc(x) == probe.fc(probe.norm(x)) for pooled features x, so that it can head a
    Classifier without one (`head_init=probe`)."""
    norm, fc = probe.norm, probe.fc
    scale = torch.rsqrt(norm.running_var + norm.eps)
    weight = fc.weight * scale
    return {"weight": weight, "bias": fc.bias - weight @ norm.running_mean}


def semi_subset(
    samples: list[Sample], fraction: float, seed: int, classes: list[str]
) -> list[Sample]:
    """The labelled set of the semi-supervised protocol (docs/design.md): per class,
    round(fraction * class count) training samples, at least 1, seeded (`per_class_subset`).
    Every class of the dataset must have a training sample, and fine-tuning needs two
    samples in all."""
    counts = np.bincount([s.label for s in samples], minlength=len(classes))
    short = [c for c in range(len(classes)) if counts[c] < 1]
    if short:
        c = short[0]
        raise ConfigError(
            f"protocol=semi, label_fraction={fraction}: class {c} ({classes[c]!r}) has "
            f"{counts[c]} training samples; the fraction needs at least 1 of every class "
            f"({len(short)} class(es) short)"
        )
    chosen = per_class_subset(samples, fraction, seed, "label_fraction")
    if len(chosen) < 2:
        raise ConfigError(
            f"protocol=semi, label_fraction={fraction} keeps {len(chosen)} training sample; "
            f"fine-tuning needs at least 2 (batch norm): raise label_fraction"
        )
    return chosen
