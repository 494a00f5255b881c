"""How much an encoder's temporal convolutions still see motion: per block, the share of the
temporal kernels' energy at zero frequency (a pure time average has 1.0) and the share of the
block's activation variance that lies over time within a sequence, then the kernels' whole
energy spectrum averaged over the blocks, for a checkpoint's encoder against the same
backbone at random initialisation (seed 0).

    python experiments/temporal_kernels.py --checkpoint RUN/checkpoint.pt [--data DIR]
        [--write-dc-free OUT.pt [--random-init]]

--write-dc-free writes a copy of the checkpoint whose temporal kernels have their time mean
removed (each kernel minus its average over the K taps), to fine-tune from
(`python -m mcc evaluate --checkpoint OUT.pt`): a probe of whether the zero-frequency part of
the pretrained kernels is what holds fine-tuning back. With --random-init the encoder's
weights are first replaced by the random initialisation (seed 0): the control, a
zero-mean-kernel start without pretraining. A diagnostic, not part of the method.

Activations: 96 training samples (seeded), deterministic classifier inputs of 64 frames,
batch-norm in training mode as in fine-tuning.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcc.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from mcc.config import DataConfig  # noqa: E402
from mcc.data import load_splits  # noqa: E402
from mcc.features import batch_inputs  # noqa: E402
from mcc.layouts import layout_from_dict  # noqa: E402
from mcc.models import build_encoder  # noqa: E402
from mcc.pretrained import load_pretrained_encoder  # noqa: E402

TEMPORAL_KERNEL = re.compile(r"encoder\.blocks\.\d+\.tcn\.net\.2\.weight")


def kernel_spectrum(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, K, 1) temporal kernels -> share of their energy in each rfft bin (K // 2 + 1,);
    bin f is f / K cycles per frame."""
    energy = (torch.fft.rfft(weight[..., 0], dim=-1).abs() ** 2).sum(dim=(0, 1))
    return energy / energy.sum()


def temporal_variance_shares(encoder, x: torch.Tensor) -> list[float]:
    """Per block: variance over time within (body, channel, joint) / total variance."""
    outs: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, i, o: outs.append(o.detach())) for b in
             encoder.blocks]  # fmt: skip
    encoder.train()
    with torch.no_grad():
        encoder(x)
    for h in hooks:
        h.remove()
    return [float(o.var(dim=2).mean() / o.var(dim=(0, 2, 3)).mean()) for o in outs]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--normalize", default="center", help="data.normalize used in pretraining")
    p.add_argument("--write-dc-free", metavar="OUT.pt", help="see the docstring")
    p.add_argument("--random-init", action="store_true", help="with --write-dc-free")
    args = p.parse_args()
    torch.set_num_threads(1)
    trained, model_cfg, layout = load_pretrained_encoder(args.checkpoint)
    if args.write_dc_free:
        state = load_checkpoint(args.checkpoint)
        state.pop("path", None)
        if args.random_init:
            torch.manual_seed(0)
            fresh = build_encoder(model_cfg, layout_from_dict(layout)).state_dict()
            state["model"].update({f"encoder.{k}": v for k, v in fresh.items()})
        kernels = [k for k in state["model"] if TEMPORAL_KERNEL.fullmatch(k)]
        for k in kernels:
            w = state["model"][k]
            state["model"][k] = w - w.mean(dim=2, keepdim=True)
        save_checkpoint(args.write_dc_free, state)
        print(f"wrote {args.write_dc_free}: time mean removed from {len(kernels)} temporal kernels")
    splits = load_splits(DataConfig(path=args.data, normalize=args.normalize))
    torch.manual_seed(0)
    random_init = build_encoder(model_cfg, splits.manifest.layout)
    rng = np.random.default_rng(0)
    chunk = [splits.train[i] for i in rng.permutation(len(splits.train))[:96]]
    x = batch_inputs(chunk, 64, splits.manifest.max_bodies)
    encoders = {"checkpoint": trained, "random init": random_init}
    tv = {n: temporal_variance_shares(e, x) for n, e in encoders.items()}
    # (blocks, K // 2 + 1) energy shares per encoder; column 0 is the zero-frequency share
    spec = {n: torch.stack([kernel_spectrum(b.tcn.net[2].weight.detach()) for b in e.blocks])
            for n, e in encoders.items()}  # fmt: skip
    ck, rd = spec["checkpoint"], spec["random init"]
    print(f"{args.checkpoint} ({model_cfg.backbone}, width {model_cfg.width}) on {args.data}")
    print("| block | kernel DC share | (random init) | temporal variance share | (random init) |")
    print("|---|---|---|---|---|")
    for k in range(len(trained.blocks)):
        print(f"| {k} | {ck[k, 0]:.2f} | {rd[k, 0]:.2f} | {tv['checkpoint'][k]:.3f} | "
              f"{tv['random init'][k]:.3f} |")  # fmt: skip
    size = trained.blocks[0].tcn.net[2].weight.shape[2]
    bins = [f"{f / size:.2f}" for f in range(size // 2 + 1)]
    print("\nkernel energy share by temporal frequency (cycles per frame), mean over blocks:")
    print("| encoder | " + " | ".join(bins) + " |")
    print("|---" * (len(bins) + 1) + "|")
    for name, blocks in spec.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in blocks.mean(0).tolist()) + " |")


if __name__ == "__main__":
    main()
