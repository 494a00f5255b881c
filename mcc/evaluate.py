"""One downstream evaluation run: an encoder (a checkpoint's, or a random initialisation),
a protocol, a dataset; the run folder it writes.

Protocols: knn (mcc/knn.py), linear and finetune (all labels, or label_fraction of each
class; mcc/classifier.py), semi (finetune on a seeded per-class fraction 0 < label_fraction
< 1, Table 5) and transfer (finetune, on this dataset, a checkpoint trained on another one:
Tables 6, 7). The fine-tuning protocols save the trained encoder as the run's checkpoint.pt
(kind `finetune`), which `--checkpoint` accepts like a pretraining one: Table 7's "fully
supervised" row is a finetune on the source dataset, then transfer from that run to the
target. Every run also saves its test-set class scores (scores.npz, mcc/fusion.py), so that
separately trained models can be fused.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from mcc import files
from mcc.checkpoint import load_checkpoint, save_checkpoint
from mcc.classifier import fit_classifier, semi_subset
from mcc.config import ConfigError, EvalConfig, to_dict
from mcc.data import load_splits, per_class_subset
from mcc.device import describe, resolve_device, resolve_precision
from mcc.features import encode, labels_of
from mcc.fusion import save_scores
from mcc.knn import accuracy, knn_test_scores
from mcc.models import build_encoder
from mcc.pretrained import check_backbone, check_layout, check_normalize, encoder_of, source_of
from mcc.runs import RunDir, finished_run
from mcc.train import seed_everything

FINETUNED = ("finetune", "semi", "transfer")  # protocols that train the encoder and save it


def evaluate(
    cfg: EvalConfig,
    checkpoint: str | None,
    out: str | Path,
    progress: bool = True,
    device: str = "auto",
) -> dict:
    """Run cfg.protocol with the encoder of `checkpoint` (None: random init, the
    "w/o pre-training" row) on cfg.data; train on the training split (or its labelled
    fraction), report on the test split (cfg.scored="val": on the data.val_fraction carve of
    the training split, which is then left out of the training data). Writes the run folder
    `out`. `device` is mcc.device.resolve_device's (a checkpoint from any device loads)."""
    dev = resolve_device(device)
    precision = resolve_precision(cfg.precision, dev)
    if cfg.protocol == "transfer" and not checkpoint:
        raise ConfigError(
            "protocol=transfer fine-tunes a checkpoint trained on another dataset: pass "
            "--checkpoint (a pretraining run, or a finetune run for the fully supervised row)"
        )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data)
    manifest = splits.manifest
    if cfg.scored == "val":
        if not splits.val:
            raise ConfigError(
                f"scored=val scores the validation carve of the training split: set "
                f"data.val_fraction (e.g. 0.2); it is {cfg.data.val_fraction}"
            )
        splits = dataclasses.replace(splits, test=splits.val)
    if not splits.test:
        raise ConfigError(f"dataset {cfg.data.path} has no 'test' split to evaluate on")
    unlabelled = [s for s in splits.train + splits.test if not 0 <= s.label < len(manifest.classes)]
    if unlabelled:
        raise ConfigError(
            f"dataset {cfg.data.path} is not labelled for evaluation: {len(unlabelled)} "
            f"sample(s) have no class among its {len(manifest.classes)}, e.g. "
            f"{unlabelled[0].sample_id} (label {unlabelled[0].label})"
        )
    source = {}
    if checkpoint:
        state = load_checkpoint(checkpoint)
        check_layout(state["layout"], manifest.layout, checkpoint, cfg.data.path)
        encoder, model_cfg = encoder_of(state)
        check_backbone(cfg.model, model_cfg, checkpoint)
        check_normalize(cfg.data, state, checkpoint)
        layout_json, source = state["layout"], source_of(state)
    else:
        model_cfg = cfg.model
        encoder = build_encoder(model_cfg, manifest.layout)
        layout_json = manifest.layout.to_json()
    train = splits.train
    if cfg.protocol == "semi":
        train = semi_subset(train, cfg.label_fraction, cfg.seed, manifest.classes)
    elif cfg.label_fraction < 1:
        train = per_class_subset(train, cfg.label_fraction, cfg.seed, "label_fraction")
    run = RunDir(out)
    run.write_config({**to_dict(cfg), "model": to_dict(model_cfg), "checkpoint": checkpoint})
    if run.metrics_file.exists():
        run.metrics_file.unlink()
    bodies, n_cls = manifest.max_bodies, len(manifest.classes)
    encoder.to(dev)
    if cfg.protocol == "knn":
        scores = knn_test_scores(encoder, train, splits.test, cfg, bodies, n_cls)
    else:
        frozen = cfg.protocol == "linear"
        model = fit_classifier(encoder, train, cfg, bodies, n_cls, run, progress, frozen)
        scores = encode(model, splits.test, cfg.frames, bodies).cpu()
        if cfg.protocol in FINETUNED:  # the trained encoder, for `--checkpoint` (Table 7)
            save_checkpoint(
                run.checkpoint,
                {
                    "kind": "finetune",
                    "config": to_dict(dataclasses.replace(cfg, model=model_cfg)),
                    "layout": layout_json,
                    "max_bodies": bodies,
                    "epoch": cfg.optim.epochs - 1,
                    "model": model.state_dict(),
                    "dataset": manifest.name,
                    "classes": list(manifest.classes),
                },
            )
    labels = labels_of(splits.test)
    save_scores(run.path, scores, labels, [s.sample_id for s in splits.test])
    res = accuracy(scores, labels, n_cls)
    (run.path / "labelled_ids.json").write_text(json.dumps([s.sample_id for s in train]))
    result = {
        "kind": "evaluate",
        "protocol": cfg.protocol,
        "dataset": manifest.name,
        "checkpoint": checkpoint,
        **source,
        "label_fraction": cfg.label_fraction,
        "train_samples": len(train),
        "labelled_per_class": np.bincount([s.label for s in train], minlength=n_cls).tolist(),
        "labelled_ids": "labelled_ids.json",
        "scored": cfg.scored,
        "test_samples": len(splits.test),
        "device": describe(dev),
        "precision": precision if cfg.protocol != "knn" else "fp32",
        **res,
    }
    if cfg.protocol in FINETUNED:
        result["saved_checkpoint"] = files.join(run.location, "checkpoint.pt")
    return run.write_result(result, cfg.seed)


def finished_evaluation(cfg: EvalConfig, out: str | Path) -> dict | None:
    """The result of the evaluation with `cfg` if the run folder `out` already holds it
    finished; None if not run yet; a ConfigError if `out` holds one made with other settings
    (`mcc.runs.finished_run`). The encoder is not compared: every cache of evaluations names
    a run's folder for its encoder (a trial, a cell, an initialisation), so a folder copied or
    moved with its pretraining runs stays reusable; the model config is the checkpoint's."""
    return finished_run(out, cfg, ignore=("model",))
