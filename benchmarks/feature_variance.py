"""What an encoder's pooled features encode: the share of their variance between groups.

For a pretraining checkpoint (and an encoder of the same width at random initialisation),
encodes every `--every`-th training sample (deterministic classifier input) and prints, for
the L2-normalised features, the between-group share of the total variance for each grouping:
class, subject, second person present, and sequence-length quartile. A share near 1 means the
grouping explains the features; class should be the large one for kNN to work.

    python benchmarks/feature_variance.py --data data/synthetic --checkpoint RUN/checkpoint.pt
        [--normalize center] [--every 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcc.config import DataConfig, ModelConfig  # noqa: E402
from mcc.data import load_splits  # noqa: E402
from mcc.evaluate import encode, load_pretrained_encoder  # noqa: E402
from mcc.models import build_encoder  # noqa: E402


def between_share(features: torch.Tensor, groups: torch.Tensor) -> float:
    f = torch.nn.functional.normalize(features, dim=1)
    mean = f.mean(0)
    total = ((f - mean) ** 2).sum(1).mean()
    between = sum(
        (groups == g).sum() * ((f[groups == g].mean(0) - mean) ** 2).sum() for g in groups.unique()
    )
    return float(between / len(f) / total)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--normalize", default="center", help="data.normalize used in pretraining")
    p.add_argument("--every", type=int, default=3, help="use every n-th training sample")
    args = p.parse_args()
    torch.set_num_threads(1)
    splits = load_splits(DataConfig(path=args.data, normalize=args.normalize))
    samples = splits.train[:: args.every]
    bodies = splits.manifest.max_bodies
    second = [int(s.joints.shape[0] > 1 and bool((s.joints[1] != 0).any())) for s in samples]
    frames = torch.tensor([float(s.num_frames) for s in samples])
    quartiles = frames.quantile(torch.tensor([0.25, 0.5, 0.75]))
    groups = {
        "class": torch.tensor([s.label for s in samples]),
        "subject": torch.tensor([s.subject for s in samples]),
        "second person": torch.tensor(second),
        "length quartile": torch.bucketize(frames, quartiles),
    }
    trained, model_cfg, _ = load_pretrained_encoder(args.checkpoint)
    torch.manual_seed(0)
    random_init = build_encoder(
        ModelConfig(width=model_cfg.width, backbone=model_cfg.backbone, stream=model_cfg.stream),
        splits.manifest.layout,
    )
    print(f"{len(samples)} training samples of {args.data}, normalize={args.normalize}")
    print("| encoder | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for name, enc in (("checkpoint", trained), ("random init", random_init)):
        with torch.no_grad():
            f = encode(enc, samples, 64, bodies)
        shares = " | ".join(f"{between_share(f, g):.2f}" for g in groups.values())
        print(f"| {name} | {shares} |")


if __name__ == "__main__":
    main()
