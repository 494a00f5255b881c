"""Does the GPU path work on this machine? One short run (under 5 minutes on one H100).

    python benchmarks/gpu_check.py [--device cuda] [--out DIR] [--data DIR]
        [--skip ray] [--only pretrain knn ...]

Prints one line per check, `PASS name: detail`, `FAIL name: reason` or `SKIP name: why`, then
a summary line; exits 1 when a check failed, 2 when --device is not on this machine. Each
check's own output (epoch lines, Ray's logs) goes to OUT/NAME.log, its runs to OUT/NAME*.

  data         the embedded default set in --data (default OUT/synthetic), generated if missing
  pretrain     `mcc.train.pretrain` on the device, --preset (demo) for --epochs (2): a finite
               loss, a checkpoint that records the device and precision and reloads on the
               CPU (load_checkpoint, mcc.pretrained.load_pretrained_encoder)
  knn          `mcc.evaluate.evaluate` of that checkpoint, protocol knn, on the device
  throughput   pretrain_step.py's training step at --width (1.0, the published ST-GCN) and
               --batch (64), in fp32 and in the device's mixed precision (bf16, or fp16 with
               a gradient scaler where bf16 is not supported), against its matmul peaks; a
               --device cpu dry run steps a small model (width 0.125, batch 8) instead
  ray          a 1-worker Ray Train run (`tune.train.run_pretraining`, tiny preset) with
               use_gpu=True, whose collectives go through NCCL even at world size 1: it
               finishes with a finite loss, on a CUDA device at auto's precision (as its
               result.json records them), and its checkpoint loads on the CPU
  ray-scaling  with 2+ GPUs, a 2-worker run against the 1-worker one (clips/s each)

`--skip ray` leaves out both Ray checks. `--device cpu` is a dry run of the same checks on
the CPU (gloo, use_gpu=False), for trying the script on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a plain checkout's mcc and tune

import torch  # noqa: E402
from pretrain_step import figure_line, matmul_peak, measure, precisions  # noqa: E402

from mcc import presets  # noqa: E402
from mcc.checkpoint import load_checkpoint  # noqa: E402
from mcc.config import ConfigError, PretrainConfig, apply_overrides  # noqa: E402
from mcc.datasets.synthetic import prepare_if_missing  # noqa: E402
from mcc.device import DTYPES, describe, resolve_device, resolve_precision  # noqa: E402
from mcc.evaluate import evaluate  # noqa: E402
from mcc.pretrained import load_pretrained_encoder  # noqa: E402
from mcc.runs import RunDir  # noqa: E402
from mcc.shards import read_manifest  # noqa: E402
from mcc.train import pretrain  # noqa: E402

RAY_PRESET = "tiny"  # the Ray checks show the path works; their model need not be big
NAMES = ("data", "pretrain", "knn", "throughput", "ray", "ray-scaling")
# The throughput check's model width, batch and timed steps: the published model on a GPU;
# in a CPU dry run a small one, which a 2-core machine steps through in seconds, not minutes.
THROUGHPUT = {
    "cuda": {"width": 1.0, "batch": 64, "steps": 5},
    "cpu": {"width": 0.125, "batch": 8, "steps": 2},
}
NEEDS = {"pretrain": "data", "knn": "pretrain", "ray": "data", "ray-scaling": "ray"}


class Failed(Exception):
    """A check's result is wrong; the message is the FAIL line's reason."""


class Skipped(Exception):
    """A check that does not apply here; the message says why."""


@dataclass
class Context:
    """What the checks share: the options, the device, and what earlier checks produced."""

    args: argparse.Namespace
    device: torch.device
    out: Path
    data: Path
    pretrain_cfg: PretrainConfig | None = None
    checkpoint: Path | None = None
    ray_result: dict = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def check_data(ctx: Context) -> str:
    t0 = time.time()
    made = prepare_if_missing(ctx.data, progress=False)
    m = read_manifest(ctx.data)
    splits = sorted(m.counts.items(), key=lambda kv: kv[0] != "train")
    counts = ", ".join(f"{c['samples']} {split}" for split, c in splits)
    how = f"generated in {time.time() - t0:.0f} s" if made else "already there"
    return f"{m.name} in {ctx.data} ({counts} sequences, {len(m.classes)} classes; {how})"


def pretrain_config(ctx: Context, preset: str) -> PretrainConfig:
    over = {"data.path": str(ctx.data), "optim.epochs": str(ctx.args.epochs)}
    return apply_overrides(PretrainConfig(), {**presets.PRETRAIN[preset], **over})


def check_pretrain(ctx: Context) -> str:
    cfg = pretrain_config(ctx, ctx.args.preset)
    res = pretrain(cfg, ctx.out / "pretrain", progress=False, device=str(ctx.device))
    losses = [h["loss"] for h in RunDir(ctx.out / "pretrain").metrics()]
    if len(losses) != cfg.optim.epochs or not all(math.isfinite(x) for x in losses):
        raise Failed(f"losses per epoch {losses}: want {cfg.optim.epochs} finite values")
    want = (describe(ctx.device), resolve_precision(cfg.precision, ctx.device))
    state = load_checkpoint(res["checkpoint"])  # onto the CPU, whatever it was trained on
    if (state.get("device"), state.get("precision")) != want:
        raise Failed(
            f"checkpoint records device {state.get('device')!r}, precision "
            f"{state.get('precision')!r}; want {want[0]!r}, {want[1]!r}"
        )
    off_cpu = [k for k, v in state["model"].items() if v.device.type != "cpu"]
    if off_cpu:
        raise Failed(f"load_checkpoint left {len(off_cpu)} tensors off the CPU, e.g. {off_cpu[0]}")
    features = cpu_features(res["checkpoint"], read_manifest(ctx.data).max_bodies)
    ctx.pretrain_cfg, ctx.checkpoint = cfg, Path(res["checkpoint"])
    final = res["final"]
    return (
        f"{cfg.optim.epochs} epochs ({ctx.args.preset}) on {res['device']}, precision "
        f"{res['precision']}, {res['sampling_workers'] or 'no'} sampling process(es): loss "
        f"{losses[0]:.3f} -> {losses[-1]:.3f}, {final['clips_per_s']:.0f} clips/s; the "
        f"checkpoint records {want[1]} on {state['device']} and its encoder reloads on "
        f"the CPU (features {tuple(features.shape)})"
    )


def cpu_features(checkpoint: Path, bodies: int) -> torch.Tensor:
    """The checkpoint's encoder, loaded on the CPU, on two random clips: finite features."""
    encoder, _, _ = load_pretrained_encoder(checkpoint)
    if any(p.device.type != "cpu" for p in encoder.parameters()):
        raise Failed("load_pretrained_encoder returned parameters off the CPU")
    clips = torch.randn(2, encoder.in_channels, 32, encoder.layout.num_joints, bodies)
    with torch.no_grad():
        features = encoder.eval()(clips)
    if not torch.isfinite(features).all():
        raise Failed("the reloaded encoder gives non-finite features on the CPU")
    return features


def check_knn(ctx: Context) -> str:
    cfg = presets.evaluation(ctx.pretrain_cfg, ctx.args.preset, {"protocol": "knn"})
    res = evaluate(
        cfg, str(ctx.checkpoint), ctx.out / "knn", progress=False, device=str(ctx.device)
    )
    if res["device"] != describe(ctx.device):
        raise Failed(f"ran on {res['device']}, not on {describe(ctx.device)}")
    if not 0 <= res["top1"] <= 100:
        raise Failed(f"top-1 {res['top1']} is not a percentage")
    chance = 100 / len(read_manifest(ctx.data).classes)
    return (
        f"top-1 {res['top1']:.1f}% (chance {chance:.1f}%) on {res['device']}, "
        f"{res['train_samples']} train / {res['test_samples']} test sequences"
    )


def throughput_size(ctx: Context) -> argparse.Namespace:
    """--width, --batch and --steps, each by default the device type's THROUGHPUT value."""
    own = THROUGHPUT[ctx.device.type]
    given = {k: getattr(ctx.args, k) for k in own}
    return argparse.Namespace(**{k: own[k] if v is None else v for k, v in given.items()})


def check_throughput(ctx: Context) -> str:
    a = throughput_size(ctx)
    base = {"optim.batch_size": str(a.batch), "model.width": str(a.width)}
    parts = {}
    for precision in precisions(ctx.device):
        peak = matmul_peak(DTYPES.get(precision, torch.float32), ctx.device, seconds=1.0)
        m = measure(base, precision, ctx.device, a.batch, 2, a.steps, warmup=2)
        print(figure_line(m, peak), flush=True)  # the full figures, in the log
        if not (math.isfinite(m["clips"]) and m["clips"] > 0):
            raise Failed(f"{precision}: {m['clips']} clips/s")
        parts[precision] = (m["clips"], 100 * m["gflops"] / peak)
    fp32, mixed = precisions(ctx.device)
    figures = ", ".join(
        f"{k} {c:.0f} clips/s ({f:.0f}% of its matmul peak)" for k, (c, f) in parts.items()
    )
    return (
        f"width {a.width}, batch {a.batch}x3 clips, 2 persons: {figures}; {mixed}/fp32 "
        f"x{parts[mixed][0] / parts[fp32][0]:.2f}"
    )


def ray_run(ctx: Context, workers: int) -> dict:
    """A Ray Train pretraining with `workers` workers (tiny preset) on the device's kind."""
    from tune.cluster import connect
    from tune.train import run_pretraining

    print(f"using {connect()}", flush=True)
    if ctx.cuda:
        torch.cuda.empty_cache()  # the Ray workers share this process's GPU: free its cache
    cfg = pretrain_config(ctx, RAY_PRESET)
    return run_pretraining(
        cfg,
        ctx.out / f"ray-{workers}worker",
        num_workers=workers,
        cpus_per_worker=1,
        use_gpu=ctx.cuda,
    )


def recorded_backend(res: dict) -> str | None:
    """The process group's backend as the run recorded it (result or final epoch), if it did."""
    return res.get("backend") or res.get("final", {}).get("backend")


def check_ray(ctx: Context) -> str:
    res = ray_run(ctx, 1)
    final = res.get("final", {})
    if final.get("epoch") != ctx.args.epochs - 1 or not math.isfinite(final.get("loss", math.nan)):
        raise Failed(
            f"the run ended at epoch {final.get('epoch')} with loss "
            f"{final.get('loss')}; want {ctx.args.epochs} epochs, a finite loss"
        )
    load_checkpoint(res["checkpoint"])
    where = ray_device(ctx, res)
    backend = recorded_backend(res)
    expected = "nccl" if ctx.cuda else "gloo"
    if backend is not None and backend != expected:
        raise Failed(f"backend {backend}, want {expected} with use_gpu={ctx.cuda}")
    said = backend or f"{expected} (tune.train's for use_gpu={ctx.cuda}; not in result.json)"
    ctx.ray_result = res
    return (
        f"1 worker, use_gpu={ctx.cuda}, backend {said}: finished {final['epoch'] + 1} "
        f"epochs{where}, loss {final['loss']:.3f}, {final['clips_per_s']:.0f} clips/s; "
        f"the checkpoint loads on the CPU"
    )


def ray_device(ctx: Context, res: dict) -> str:
    """Where and at what the worker trained, as result.json records it (` on DEVICE at
    PRECISION`, or "" when it does not): a CUDA device at auto's precision with use_gpu."""
    device, precision = res.get("device"), res.get("precision")
    if device is None:
        return ""
    if not device.startswith(ctx.device.type):
        raise Failed(f"the worker trained on {device}, not on a {ctx.device.type} device")
    want = resolve_precision(pretrain_config(ctx, RAY_PRESET).precision, ctx.device)
    if precision != want:
        raise Failed(f"the worker trained at {precision}, not at {want}")
    return f" on {device} at {precision}"


def check_ray_scaling(ctx: Context) -> str:
    have = torch.cuda.device_count() if ctx.cuda else (os.cpu_count() or 1)
    if have < 2:
        raise Skipped(f"{have} {'GPU' if ctx.cuda else 'CPU'}: a 2-worker run needs 2")
    two = ray_run(ctx, 2)["final"]
    one = ctx.ray_result["final"]
    if two.get("workers") != 2 or not math.isfinite(two.get("loss", math.nan)):
        raise Failed(f"the 2-worker run ended with {two}")
    a, b = one["clips_per_s"], two["clips_per_s"]
    return (
        f"last epoch, tiny preset: 1 worker {a:.0f} clips/s, 2 workers {b:.0f} clips/s "
        f"(x{b / a:.2f})"
    )


CHECKS: dict[str, Callable[[Context], str]] = {
    "data": check_data,
    "pretrain": check_pretrain,
    "knn": check_knn,
    "throughput": check_throughput,
    "ray": check_ray,
    "ray-scaling": check_ray_scaling,
}


def expand(names: list[str]) -> set[str]:
    """Check names, `ray` standing for both Ray checks."""
    return {n for n in NAMES for g in names if n == g or (g == "ray" and n.startswith("ray"))}


def selected(only: list[str] | None, skip: list[str]) -> set[str]:
    """The checks to run: --only (with the checks they build on), less --skip."""
    chosen = expand(only) if only else set(NAMES)
    for name in list(chosen):
        while name in NEEDS:
            name = NEEDS[name]
            chosen.add(name)
    return chosen - expand(skip)


def run_check(ctx: Context, name: str, status: dict[str, str]) -> str:
    """Run one check with its output in OUT/NAME.log; print and return its line's status."""
    log = ctx.out / f"{name}.log"
    need = NEEDS.get(name)
    try:
        if need is not None and status.get(need) != "PASS":
            raise Skipped(f"needs the {need} check, which did not pass")
        with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            detail = CHECKS[name](ctx)
        word = "PASS"
    except Skipped as e:
        word, detail = "SKIP", str(e)
    except Exception as e:  # every failure is a FAIL line; its traceback goes to the log
        with open(log, "a") as f:
            traceback.print_exc(file=f)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        reason = first if isinstance(e, (Failed, ConfigError)) else f"{type(e).__name__}: {first}"
        word, detail = "FAIL", f"{reason} (log: {log})"
    print(f"{word} {name}: {detail}", flush=True)
    return word


def out_folder(given: str | None) -> Path:
    """--out, new or empty (the checks write fresh runs), or a new temporary folder."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="mcc-gpu-check-"))
    out = Path(given).resolve()
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {given} is not empty: give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def size_help(what: str, key: str) -> str:
    gpu, cpu = THROUGHPUT["cuda"][key], THROUGHPUT["cpu"][key]
    return f"{what} of the throughput check (default {gpu}; {cpu} with --device cpu)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a dry run")
    p.add_argument("--out", help="run folders and logs (new or empty; default a temp folder)")
    p.add_argument(
        "--data",
        help="dataset folder, generated there if missing (default "
        "OUT/synthetic, the embedded default set)",
    )
    p.add_argument(
        "--preset",
        choices=["tiny", "demo", "small"],
        default="demo",
        help="of the pretrain and knn checks",
    )
    p.add_argument("--epochs", type=int, default=2, help="of the pretraining runs")
    p.add_argument("--width", type=float, help=size_help("model.width", "width"))
    p.add_argument("--batch", type=int, help=size_help("batch", "batch"))
    p.add_argument("--steps", type=int, help=size_help("timed steps", "steps"))
    p.add_argument(
        "--only", nargs="+", choices=NAMES, help="run these checks (and those they build on)"
    )
    p.add_argument(
        "--skip",
        nargs="+",
        choices=NAMES,
        default=[],
        help="leave these out (ray: both Ray checks)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.epochs < 1:
            raise ConfigError(f"--epochs={args.epochs}: must be >= 1")
        device = resolve_device(args.device)
        out = out_folder(args.out)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    data = Path(args.data).resolve() if args.data else out / "synthetic"
    ctx = Context(args, device, out, data)
    chosen = selected(args.only, args.skip)
    t0, status = time.time(), {}
    try:
        for name in NAMES:
            if name in chosen:
                status[name] = run_check(ctx, name, status)
            else:
                print(f"SKIP {name}: left out (--only, --skip)", flush=True)
                status[name] = "SKIP"
    finally:
        if "ray" in sys.modules:
            import ray

            ray.shutdown()
    counts = {w: sum(s == w for s in status.values()) for w in ("PASS", "FAIL", "SKIP")}
    verdict = "FAILED" if counts["FAIL"] else "OK"
    print(
        f"{verdict}: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} "
        f"skipped on {describe(device)} in {time.time() - t0:.0f} s; runs and logs in "
        f"{out}"
    )
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
