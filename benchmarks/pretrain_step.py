"""Throughput of one full MCC training step (Eq. 4: triplet + NCE + interpolation).

Default: ST-GCN (--backbone agcn | asgcn for the others, --stream bone for the bone
stream) at full width, batch 64, three 32-frame clips per sample, 25 joints,
2 persons, synthetic tensors (no data loading). Prints clips/s for fp32 and for bf16
autocast, the FLOPs of one step (torch's FLOP counter, forward + backward) and the achieved
GFLOP/s as a fraction of this machine's measured matmul peak.

    python benchmarks/pretrain_step.py [--backbone stgcn] [--stream joint] [--batch 64]
        [--steps 3] [--set model.width=0.25]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mcc.config import CHOICES, PretrainConfig, apply_overrides, parse_set_args
from mcc.layouts import NTU25
from mcc.model import MCC
from mcc.train import make_optimizer, training_step


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    """GFLOP/s of a square matmul, best of repeated runs."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best, t_end = 0.0, time.time() + seconds
    while time.time() < t_end:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def make_batch(cfg: PretrainConfig, batch: int, bodies: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    clip = (batch, 3, cfg.sampling.clip_len, NTU25.num_joints, bodies)
    target = (batch, 3, cfg.sampling.clip_len * cfg.loss.interp_rate, NTU25.num_joints, bodies)
    out = {k: torch.randn(clip, generator=g) for k in ("anchor", "positive", "negative")}
    out.update({k: torch.randn(target, generator=g) for k in ("anchor_target", "positive_target")})
    out["ids"] = torch.arange(batch)
    return out


def run(cfg: PretrainConfig, batch: dict, steps: int, warmup: int) -> tuple[float, float]:
    """(seconds per step, FLOPs per step)."""
    torch.manual_seed(0)
    model = MCC(cfg, NTU25)
    opt, _ = make_optimizer(model.online_parameters(), cfg.optim)
    for _ in range(warmup):
        training_step(model, batch, opt, cfg)
    counter = FlopCounterMode(display=False)
    with counter:
        training_step(model, batch, opt, cfg)
    t0 = time.perf_counter()
    for _ in range(steps):
        training_step(model, batch, opt, cfg)
    return (time.perf_counter() - t0) / steps, counter.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbone", choices=CHOICES["model.backbone"], default="stgcn")
    p.add_argument("--stream", choices=CHOICES["model.stream"], default="joint")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--bodies", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = {
        "optim.batch_size": str(args.batch),
        "model.backbone": args.backbone,
        "model.stream": args.stream,
        **parse_set_args(args.set),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s")
    for precision in ("fp32", "bf16"):
        cfg = apply_overrides(PretrainConfig(), {**base, "precision": precision})
        batch = make_batch(cfg, args.batch, args.bodies)
        sec, flops = run(cfg, batch, args.steps, args.warmup)
        clips = 3 * args.batch / sec
        gflops = flops / sec / 1e9
        print(
            f"{precision}: {cfg.model.backbone} ({cfg.model.stream} stream), width "
            f"{cfg.model.width}, batch {args.batch}x3 clips, {args.bodies} persons: "
            f"{sec:.2f} s/step, {clips:.1f} clips/s, {flops / 1e9:.1f} GFLOP/step, "
            f"{gflops:.1f} GFLOP/s = {100 * gflops / peaks[precision]:.1f}% of the {precision} "
            f"matmul peak",
            flush=True,
        )


if __name__ == "__main__":
    main()
