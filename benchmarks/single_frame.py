"""How much does one frame tell about the class? An MLP on single poses.

Trains a 2-hidden-layer MLP on individual frames (body 0, centred on the layout's centre
joint, flattened) drawn from the training split, and reports frame-level test top-1 next to
chance. A dataset where this is near chance can only be solved by reading motion.

    python benchmarks/single_frame.py --data data/synthetic [--device auto]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mcc.config import ConfigError
from mcc.device import DEVICE_HELP, resolve_device
from mcc.sampling import normalize
from mcc.shards import load_samples, read_manifest


def frames_of(samples, layout, per_seq: int, rng):
    xs, ys = [], []
    for s in samples:
        seq = normalize(s.joints, layout, "center")[0]  # (T, V, C)
        idx = rng.integers(0, seq.shape[0], size=per_seq)
        xs.append(seq[idx].reshape(per_seq, -1))
        ys += [s.label] * per_seq
    return torch.from_numpy(np.concatenate(xs)).float(), torch.tensor(ys)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--frames-per-seq", type=int, default=16)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    args = p.parse_args()
    try:
        device = resolve_device(args.device)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    m = read_manifest(args.data)
    xtr, ytr = frames_of(load_samples(args.data, "train"), m.layout, args.frames_per_seq, rng)
    xte, yte = frames_of(load_samples(args.data, "test"), m.layout, args.frames_per_seq, rng)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = ((xtr - mu) / sd).to(device), ((xte - mu) / sd).to(device)
    ytr, yte = ytr.to(device), yte.to(device)
    k = len(m.classes)
    net = nn.Sequential(
        nn.Linear(xtr.shape[1], 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, k)
    ).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(args.epochs):
        for idx in torch.randperm(len(xtr)).to(device).split(256):
            loss = F.cross_entropy(net(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        train_acc = (net(xtr).argmax(1) == ytr).float().mean().item() * 100
        test_acc = (net(xte).argmax(1) == yte).float().mean().item() * 100
    print(f"dataset {m.name}: {k} classes, chance {100 / k:.1f}%")
    print(
        f"single-frame MLP: train top-1 {train_acc:.1f}%, test top-1 {test_acc:.1f}% "
        f"({len(xtr)} train frames, {len(xte)} test frames)"
    )


if __name__ == "__main__":
    main()
