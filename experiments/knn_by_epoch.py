"""Probe: pretrain in one process and print the test kNN top-1 every few epochs.

Answers "when, if ever, do the pretrained features start to tell the classes apart?" faster
than a full benchmark: one seed, no run folder. It scores kNN on the test split, or with
`--val-fraction F` on a validation carve of the training split (the bank is the rest), which
is what a choice between recipes should read. Used to choose the embedded default data set
and the `sweep` preset's recipe (docs/findings.md, "Choosing the default").

    python experiments/knn_by_epoch.py --data data/synthetic --epochs 6 --every 2 \
        --set loss.triplet=0 --set loss.interp=0

The config is the --preset (default `sweep`) with no validation carve, then the --set overrides; kNN
scoring is the `small` evaluation preset's (k = 20, precise batch norm). One torch thread, so
the printed figures repeat exactly.
"""

from __future__ import annotations

import argparse
import time

import torch

from mcc import presets
from mcc.config import PretrainConfig, apply_overrides, parse_set_args
from mcc.data import load_splits
from mcc.knn import knn
from mcc.train import build_training, epoch_line, pretrain_batches, run_epoch, seed_everything


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/synthetic")
    p.add_argument(
        "--preset",
        default="sweep",
        choices=sorted(presets.PRETRAIN),
        help="pretraining preset the --set overrides apply to",
    )
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--every", type=int, default=2, help="score every N epochs")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="score on this carve of each training class instead of the test split",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    over = {**presets.PRETRAIN[args.preset], "data.val_fraction": str(args.val_fraction),
            "data.path": args.data,
            "optim.epochs": str(args.epochs), **parse_set_args(args.set)}  # fmt: skip
    cfg = apply_overrides(PretrainConfig(), over)
    torch.set_num_threads(1)
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data)
    layout, bodies = splits.manifest.layout, splits.manifest.max_bodies
    ev = presets.evaluation(cfg, "small")
    model, opt, sched = build_training(cfg, layout)
    classes = len(splits.manifest.classes)

    scored, what = (splits.val, "val") if args.val_fraction > 0 else (splits.test, "test")

    def score() -> float:
        return knn(model.encoder, splits.train, scored, ev, bodies, classes)["top1"]

    print(f"random init: {what} kNN {score():.1f} (chance {100 / classes:.1f})", flush=True)
    t0 = time.time()
    for epoch in range(cfg.optim.epochs):
        batches = pretrain_batches(splits.train, cfg, epoch, bodies, layout.coord_channels)
        line = epoch_line(run_epoch(model, opt, sched, batches, cfg, epoch), cfg.optim.epochs)
        if (epoch + 1) % args.every == 0 or epoch + 1 == cfg.optim.epochs:
            line += f"  {what} kNN {score():.1f}"
        print(line, flush=True)
    print(f"{time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
