"""Which part of a pretrained encoder helps or hurts fine-tuning: write a copy of a checkpoint
whose encoder tensors under the given name prefixes (`--reset`), or all but those (`--keep`),
are put back to the random initialisation that pretraining started from, then fine-tune it
(`python -m mcc evaluate --protocol finetune --checkpoint OUT.pt ...`). A diagnostic, not part
of the method.

    python experiments/partial_init.py --checkpoint RUN/checkpoint.pt --seed S
        (--reset PREFIX ... | --keep PREFIX ...) --out OUT.pt

The initialisation is rebuilt as pretraining builds it: the encoder of the checkpoint's
config, built right after torch.manual_seed(S), S being the run's seed. The script prints,
per block, how far pretraining moved the weights from it (|w - w0| / |w0|): values near 1.4
everywhere mean that the rebuilt initialisation is not the run's start (another seed).
Batch-norm buffers count as tensors here and are reset with their layer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcc.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from mcc.layouts import layout_from_dict  # noqa: E402
from mcc.models import build_encoder  # noqa: E402
from mcc.pretrained import encoder_of  # noqa: E402


def moved(trained: dict, init: dict, prefix: str) -> float:
    """|w - w0| / |w0| over the weight matrices / kernels under `prefix`."""
    keys = [k for k in init if k.startswith(prefix) and k.endswith("weight") and init[k].dim() > 1]
    num = sum(float((trained[k] - init[k]).norm() ** 2) for k in keys)
    den = sum(float(init[k].norm() ** 2) for k in keys)
    return (num / den) ** 0.5 if den else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--seed", type=int, required=True, help="the pretraining run's seed")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--reset", nargs="+", metavar="PREFIX",
                      help="encoder tensors to put back to init, e.g. blocks.0.")  # fmt: skip
    mode.add_argument("--keep", nargs="+", metavar="PREFIX",
                      help="the only encoder tensors kept from pretraining")  # fmt: skip
    p.add_argument("--out", required=True)
    args = p.parse_args()
    state = load_checkpoint(args.checkpoint)
    trained, model_cfg = encoder_of(state)
    torch.manual_seed(args.seed)
    init = build_encoder(model_cfg, layout_from_dict(state["layout"])).state_dict()
    weights = trained.state_dict()
    blocks = sorted({k.split(".")[1] for k in init if k.startswith("blocks.")}, key=int)
    print("moved by pretraining (|w - w0| / |w0|): " + ", ".join(
        f"block {b} {moved(weights, init, f'blocks.{b}.'):.3f}" for b in blocks))  # fmt: skip
    prefixes = args.reset or args.keep
    unknown = [q for q in prefixes if not any(k.startswith(q) for k in init)]
    if unknown:
        p.error(f"no encoder tensor starts with {unknown}; names look like {next(iter(init))}")
    state.pop("path", None)
    put_back = [k for k in init
                if any(k.startswith(q) for q in prefixes) == bool(args.reset)]  # fmt: skip
    for k in put_back:
        state["model"][f"encoder.{k}"] = init[k].clone()
    save_checkpoint(args.out, state)
    print(f"wrote {args.out}: {len(put_back)} of {len(init)} encoder tensors put back to init")


if __name__ == "__main__":
    main()
