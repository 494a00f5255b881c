"""Throughput of one full MCC training step (Eq. 4: triplet + NCE + interpolation).

Default: ST-GCN (--backbone agcn | asgcn for the others, --stream bone for the bone
stream) at full width, batch 64, three 32-frame clips per sample, 25 joints,
2 persons, synthetic tensors (no data loading), on --device (default auto: the GPU when
there is one). Prints clips/s for fp32 and for the device's mixed precision (bf16 autocast
on the CPU and on GPUs that support it; fp16 autocast with a gradient scaler on GPUs that do
not: mcc.device.Amp, as pretraining runs it), the FLOPs of one step (torch's FLOP counter,
forward + backward) and the achieved GFLOP/s as a fraction of this device's measured matmul
peak at that precision. On a GPU the timed regions end with torch.cuda.synchronize(), so
the times are the device's, not the kernel launches'.

    python benchmarks/pretrain_step.py [--device auto] [--backbone stgcn] [--stream joint]
        [--batch 64] [--steps 3] [--set model.width=0.25]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mcc.config import CHOICES, ConfigError, PretrainConfig, apply_overrides, parse_set_args
from mcc.device import DEVICE_HELP, DTYPES, Amp, describe, resolve_device, resolve_precision
from mcc.layouts import NTU25
from mcc.model import MCC
from mcc.train import make_optimizer, training_step

CPU = torch.device("cpu")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work: CUDA kernels run asynchronously to the host."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def precisions(device: torch.device) -> tuple[str, str]:
    """fp32 and the mixed precision measured against it: bf16 on the CPU (as before GPUs
    were supported), on a GPU the one `precision=auto` trains at (bf16, else fp16)."""
    if device.type == "cuda":
        return "fp32", resolve_precision("auto", device)
    return "fp32", "bf16"


def matmul_peak(dtype: torch.dtype, device: torch.device = CPU, seconds: float = 3.0) -> float:
    """GFLOP/s of a square matmul on `device`, best of repeated runs (n = 2048 on the CPU,
    8192 on a GPU, whose peak a small matmul does not reach)."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    sync(device)
    best, t_end = 0.0, time.time() + seconds
    while time.time() < t_end:
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def make_batch(
    cfg: PretrainConfig, batch: int, bodies: int, device: torch.device = CPU
) -> dict[str, torch.Tensor]:
    """A batch of random views shaped like the sampler's, drawn on the CPU (the same values
    on every device) and moved to `device`."""
    g = torch.Generator().manual_seed(0)
    clip = (batch, 3, cfg.sampling.clip_len, NTU25.num_joints, bodies)
    target = (batch, 3, cfg.sampling.clip_len * cfg.loss.interp_rate, NTU25.num_joints, bodies)
    out = {k: torch.randn(clip, generator=g) for k in ("anchor", "positive", "negative")}
    out.update({k: torch.randn(target, generator=g) for k in ("anchor_target", "positive_target")})
    out["ids"] = torch.arange(batch)
    return {k: v.to(device) for k, v in out.items()}


def run(
    cfg: PretrainConfig,
    batch: dict,
    steps: int,
    warmup: int,
    device: torch.device = CPU,
) -> tuple[float, float]:
    """(seconds per step, FLOPs per step) of cfg's model at cfg.precision on `device`; the
    loop's Amp carries the fp16 gradient scaler across steps, as pretraining's does."""
    torch.manual_seed(0)
    model = MCC(cfg, NTU25).to(device)
    opt, _ = make_optimizer(model.online_parameters(), cfg.optim)
    amp = Amp.create(device, cfg.precision)
    for _ in range(warmup):
        training_step(model, batch, opt, cfg, amp=amp)
    counter = FlopCounterMode(display=False)
    with counter:
        training_step(model, batch, opt, cfg, amp=amp)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        training_step(model, batch, opt, cfg, amp=amp)
    sync(device)
    return (time.perf_counter() - t0) / steps, counter.get_total_flops()


def measure(
    base: dict,
    precision: str,
    device: torch.device,
    batch: int,
    bodies: int,
    steps: int,
    warmup: int,
) -> dict:
    """One precision's figures: the config it ran, s/step, clips/s, FLOPs and GFLOP/s."""
    cfg = apply_overrides(PretrainConfig(), {**base, "precision": precision})
    views = make_batch(cfg, batch, bodies, device)
    sec, flops = run(cfg, views, steps, warmup, device)
    return {
        "cfg": cfg,
        "precision": precision,
        "batch": batch,
        "bodies": bodies,
        "sec": sec,
        "clips": 3 * batch / sec,
        "flops": flops,
        "gflops": flops / sec / 1e9,
    }


def figure_line(m: dict, peak: float) -> str:
    """The printed line of one `measure`."""
    cfg = m["cfg"]
    scaler = " (gradient scaler)" if m["precision"] == "fp16" else ""
    return (
        f"{m['precision']}{scaler}: {cfg.model.backbone} ({cfg.model.stream} stream), width "
        f"{cfg.model.width}, batch {m['batch']}x3 clips, {m['bodies']} persons: "
        f"{m['sec']:.2f} s/step, {m['clips']:.1f} clips/s, {m['flops'] / 1e9:.1f} GFLOP/step, "
        f"{m['gflops']:.1f} GFLOP/s = {100 * m['gflops'] / peak:.1f}% of the {m['precision']} "
        f"matmul peak"
    )


def header(device: torch.device) -> str:
    """What the figures ran on; on a GPU also whether fp32 convolutions and matmuls may use
    TF32 (torch's defaults: convolutions yes, matmuls no), which moves the fp32 figures."""
    text = f"torch {torch.__version__}, {describe(device)}"
    if device.type == "cuda":
        return (f"{text}, TF32: convolutions {torch.backends.cudnn.allow_tf32}, matmuls "
                f"{torch.backends.cuda.matmul.allow_tf32}")  # fmt: skip
    return f"{text}, {torch.get_num_threads()} threads"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--backbone", choices=CHOICES["model.backbone"], default="stgcn")
    p.add_argument("--stream", choices=CHOICES["model.stream"], default="joint")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--bodies", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--peak-seconds", type=float, default=3.0, help="matmul peak: time per dtype")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override")
    args = p.parse_args()
    try:
        device = resolve_device(args.device)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    if args.threads:
        torch.set_num_threads(args.threads)
    base = {
        "optim.batch_size": str(args.batch),
        "model.backbone": args.backbone,
        "model.stream": args.stream,
        **parse_set_args(args.set),
    }
    names = precisions(device)
    print(header(device))
    peaks = {n: matmul_peak(DTYPES.get(n, torch.float32), device, args.peak_seconds) for n in names}
    print("matmul peak: " + ", ".join(f"{n} {peaks[n]:.1f} GFLOP/s" for n in names))
    for precision in names:
        m = measure(base, precision, device, args.batch, args.bodies, args.steps, args.warmup)
        print(figure_line(m, peaks[precision]), flush=True)


if __name__ == "__main__":
    main()
