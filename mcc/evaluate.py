"""Downstream evaluation of an encoder: kNN and a linear classifier on pooled features, and
fine-tuning.

Classifier input (design.md): the whole sequence resampled to cfg.frames frames, a random
crop-and-resize for training and a deterministic resampling for testing. The projection
head is dropped; kNN and linear evaluation use the pooled backbone features. Linear
evaluation and fine-tuning share one classifier-training loop (`train_classifier`); linear
freezes the encoder (weights and batch-norm statistics).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mcc.checkpoint import CheckpointError, load_checkpoint, load_module
from mcc.config import ConfigError, EvalConfig, ModelConfig, PretrainConfig, from_dict, to_dict
from mcc.data import load_splits, per_class_subset
from mcc.layouts import layout_from_dict
from mcc.models import STGCN, Classifier, build_encoder
from mcc.runs import RunDir
from mcc.sampling import eval_frames, pad_bodies
from mcc.shards import Sample
from mcc.train import _progress, make_optimizer, seed_everything, to_model_layout


def load_pretrained_encoder(path: str | Path) -> tuple[STGCN, ModelConfig, dict]:
    """The online encoder of a pretraining checkpoint, with its model config and layout."""
    state = load_checkpoint(path)
    cfg = from_dict(PretrainConfig, state["config"])
    layout = layout_from_dict(state["layout"])
    encoder = build_encoder(cfg.model, layout)
    prefix = "encoder."
    sub = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
    load_module(encoder, sub, f"encoder of {state['path']}")
    return encoder, cfg.model, state["layout"]


def batch_inputs(
    samples: list[Sample], frames: int, bodies: int, rng=None, crop_min: float = 0.5
) -> torch.Tensor:
    arr = np.stack(
        [pad_bodies(eval_frames(s.joints, frames, rng, crop_min), bodies) for s in samples]
    )
    return torch.from_numpy(np.ascontiguousarray(to_model_layout(arr)))


@torch.no_grad()
def encode(encoder, samples: list[Sample], frames: int, bodies: int, batch_size: int = 128):
    """Pooled features (N, C') of deterministic classifier inputs, encoder in eval mode."""
    encoder.eval()
    feats = [
        encoder(batch_inputs(samples[i : i + batch_size], frames, bodies))
        for i in range(0, len(samples), batch_size)
    ]
    return torch.cat(feats)


def knn_scores(train_f, train_y, test_f, k: int, num_classes: int) -> torch.Tensor:
    """Cosine kNN: each test sample's class scores are the summed similarities of its k
    nearest training samples in each class."""
    sim = F.normalize(test_f, dim=1) @ F.normalize(train_f, dim=1).t()
    k = min(k, train_f.shape[0])
    top, idx = sim.topk(k, dim=1)
    scores = torch.zeros(test_f.shape[0], num_classes)
    scores.scatter_add_(1, train_y[idx], top)
    return scores


def accuracy(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """top-1, top-5 (%), per-class accuracy and the confusion matrix (rows: true class)."""
    pred = scores.argmax(dim=1)
    top5 = scores.topk(min(5, scores.shape[1]), dim=1).indices
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    conf.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class = (conf.diag().float() / conf.sum(1).clamp(min=1)).mul(100).tolist()
    return {
        "top1": 100.0 * (pred == labels).float().mean().item(),
        "top5": 100.0 * (top5 == labels[:, None]).any(dim=1).float().mean().item(),
        "per_class_top1": [round(x, 2) for x in per_class],
        "confusion": conf.tolist(),
    }


def knn(encoder, train, test, cfg: EvalConfig, bodies: int, num_classes: int) -> dict:
    train_f = encode(encoder, train, cfg.frames, bodies)
    test_f = encode(encoder, test, cfg.frames, bodies)
    train_y = torch.tensor([s.label for s in train])
    test_y = torch.tensor([s.label for s in test])
    return accuracy(
        knn_scores(train_f, train_y, test_f, cfg.knn_k, num_classes), test_y, num_classes
    )


def train_classifier(
    encoder,
    train,
    test,
    cfg: EvalConfig,
    bodies: int,
    num_classes: int,
    run: RunDir | None = None,
    progress: bool = True,
    frozen: bool = False,
) -> dict:
    """Train a linear classifier on the encoder's pooled features on `train`, with the encoder
    (fine-tuning) or with the encoder frozen (linear evaluation), then score `test`."""
    model = Classifier(encoder, num_classes)
    encoder.requires_grad_(not frozen)
    params = model.fc.parameters() if frozen else model.parameters()
    opt, sched = make_optimizer(params, cfg.optim)
    name = "linear" if frozen else "finetune"
    bs = cfg.optim.batch_size
    test_y = torch.tensor([s.label for s in test])
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
            x = batch_inputs(chunk, cfg.frames, bodies, rng, cfg.crop_min)
            y = torch.tensor([s.label for s in chunk])
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(chunk)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(chunk)
        sched.step()
        if run is not None:
            run.log(
                {
                    "epoch": epoch,
                    "loss": total / max(1, seen),
                    "train_top1": 100.0 * correct / max(1, seen),
                    "lr": opt.param_groups[0]["lr"],
                    "epoch_time_s": round(time.time() - t0, 3),
                }
            )
    model.eval()
    with torch.no_grad():
        logits = torch.cat(
            [
                model(batch_inputs(test[i : i + 128], cfg.frames, bodies))
                for i in range(0, len(test), 128)
            ]
        )
    return accuracy(logits, test_y, num_classes)


def evaluate(
    cfg: EvalConfig, checkpoint: str | None, out: str | Path, progress: bool = True
) -> dict:
    """Run cfg.protocol with the encoder of `checkpoint` (None: random init, the
    "w/o pre-training" row) on cfg.data; train on the training split (or its labelled
    fraction), report on the test split. Writes the run folder `out`."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data)
    manifest = splits.manifest
    if not splits.test:
        raise ConfigError(f"dataset {cfg.data.path} has no 'test' split to evaluate on")
    if checkpoint:
        encoder, model_cfg, layout_json = load_pretrained_encoder(checkpoint)
        if layout_json != manifest.layout.to_json():
            raise CheckpointError(
                f"checkpoint {checkpoint} was trained on layout {layout_json['name']!r} "
                f"({layout_json['num_joints']} joints); dataset {cfg.data.path} uses "
                f"{manifest.layout.name!r} ({manifest.layout.num_joints} joints)"
            )
    else:
        model_cfg = cfg.model
        encoder = build_encoder(model_cfg, manifest.layout)
    train = splits.train
    if cfg.label_fraction < 1:
        train = per_class_subset(train, cfg.label_fraction, cfg.seed, "label_fraction")
    run = RunDir(out)
    run.write_config({**to_dict(cfg), "model": to_dict(model_cfg), "checkpoint": checkpoint})
    if run.metrics_file.exists():
        run.metrics_file.unlink()
    bodies, n_cls = manifest.max_bodies, len(manifest.classes)
    if cfg.protocol == "knn":
        res = knn(encoder, train, splits.test, cfg, bodies, n_cls)
    else:
        frozen = cfg.protocol == "linear"
        res = train_classifier(
            encoder, train, splits.test, cfg, bodies, n_cls, run, progress, frozen
        )
    (run.path / "labelled_ids.json").write_text(json.dumps([s.sample_id for s in train]))
    result = {
        "kind": "evaluate",
        "protocol": cfg.protocol,
        "dataset": manifest.name,
        "checkpoint": checkpoint,
        "label_fraction": cfg.label_fraction,
        "train_samples": len(train),
        "test_samples": len(splits.test),
        **res,
    }
    return run.write_result(result, cfg.seed)
