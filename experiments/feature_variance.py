"""What an encoder's pooled features encode: the share of their variance between groups.

For a pretraining checkpoint (and an encoder of the same width at random initialisation),
encodes every `--every`-th training sample (deterministic classifier input; batch-norm
statistics recomputed over those inputs first, as the frozen protocols do) and prints, for
the L2-normalised features, the between-group share of the total variance for each grouping:
class, subject, second person present, and sequence-length quartile. A share near 1 means the
grouping explains the features; class should be the large one for kNN to work. The last two
columns describe the standardised features (what the linear probe sees): the variance share
of their first principal direction and a participation ratio (directions that carry the
variance, from 1 to the feature width).

    python experiments/feature_variance.py --data data/synthetic --checkpoint RUN/checkpoint.pt
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
from mcc.features import encode, precise_batch_norm  # noqa: E402
from mcc.models import build_encoder  # noqa: E402
from mcc.pretrained import load_pretrained_encoder  # noqa: E402


def between_share(features: torch.Tensor, groups: torch.Tensor) -> float:
    f = torch.nn.functional.normalize(features, dim=1)
    mean = f.mean(0)
    total = ((f - mean) ** 2).sum(1).mean()
    between = sum(
        (groups == g).sum() * ((f[groups == g].mean(0) - mean) ** 2).sum() for g in groups.unique()
    )
    return float(between / len(f) / total)


def spectrum(features: torch.Tensor) -> tuple[float, float]:
    """The features standardised per dimension, as the linear probe's batch norm sees them:
    the share of their variance along the first principal direction, and the participation
    ratio (sum l)^2 / sum l^2 of the covariance eigenvalues (how many directions carry the
    variance, 1 to the feature width). A dimensional collapse shows as a large first share."""
    z = (features - features.mean(0)) / features.std(0).clamp_min(1e-12)
    eig = torch.linalg.eigvalsh(z.T @ z / (len(z) - 1)).clamp_min(0)
    return float(eig.max() / eig.sum()), float(eig.sum() ** 2 / (eig**2).sum())


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
    print("| encoder | " + " | ".join(groups) + " | first direction | effective dims |")
    print("|---|" + "---|" * (len(groups) + 2))
    for name, enc in (("checkpoint", trained), ("random init", random_init)):
        # recomputed over the encoded samples (64 frames, batches of 32), as kNN and the linear
        # probe recompute them over their training inputs
        precise_batch_norm(enc, samples, 64, bodies, 32)
        with torch.no_grad():
            f = encode(enc, samples, 64, bodies)
        shares = " | ".join(f"{between_share(f, g):.2f}" for g in groups.values())
        first, dims = spectrum(f)
        print(f"| {name} | {shares} | {first:.2f} | {dims:.1f} (of {f.shape[1]}) |")


if __name__ == "__main__":
    main()
