"""`python -m mcc {prepare,inspect,pretrain,evaluate,demo}`: the single-process CLI."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from mcc import presets
from mcc.checkpoint import CheckpointError
from mcc.config import (
    ConfigError,
    EvalConfig,
    PretrainConfig,
    apply_overrides,
    parse_set_args,
    valid_keys,
)

SET_HELP = "dotted config override, repeatable (e.g. --set loss.tau=0.2); unknown keys are errors"


def _config(cls, preset_table: dict, preset: str, sets: list[str] | None, extra: dict):
    overrides = {**preset_table[preset], **extra, **parse_set_args(sets)}
    return apply_overrides(cls(), overrides)


def cmd_prepare(args) -> int:
    if args.source == "synthetic":
        from mcc.synthetic import SyntheticConfig, generate

        cfg = apply_overrides(SyntheticConfig(), parse_set_args(args.set))
        t0 = time.time()
        m = generate(args.out, cfg, progress=not args.no_progress)
    else:
        from mcc.npz import import_npz

        if not args.src or not args.layout:
            raise ConfigError("prepare npz needs --src FILE.npz and --layout NAME|FILE.json")
        t0 = time.time()
        m = import_npz(args.src, args.layout, args.out)
    counts = ", ".join(f"{k} {v['samples']}" for k, v in m.counts.items())
    print(
        f"wrote {args.out}: {m.name}, {len(m.classes)} classes, {counts}, "
        f"{len(m.rejected)} rejected, {len(m.shards)} shard(s) in {time.time() - t0:.1f}s"
    )
    if not m.counts:
        print("error: no sample could be converted", file=sys.stderr)
        return 1
    return 0


def cmd_inspect(args) -> int:
    import numpy as np

    from mcc.sampling import effective_speed
    from mcc.shards import load_samples, read_manifest

    m = read_manifest(args.data)
    samples = load_samples(args.data)
    print(
        f"{m.name}: layout {m.layout.name} ({m.layout.num_joints} joints, channels "
        f"{','.join(m.layout.channels)}), {len(m.classes)} classes, source {m.source[:80]}"
    )
    for split, c in m.counts.items():
        print(
            f"  {split}: {c['samples']} samples, per class min {min(c['per_class'])} "
            f"max {max(c['per_class'])}"
        )
    lengths = np.array([s.num_frames for s in samples])
    bodies = np.array([s.joints.shape[0] for s in samples])
    print(f"  frames: min {lengths.min()} median {int(np.median(lengths))} max {lengths.max()}")
    hist, edges = np.histogram(lengths, bins=min(8, len(np.unique(lengths))))
    for h, lo, hi in zip(hist, edges[:-1], edges[1:]):
        print(f"    {int(lo):4d}-{int(hi):4d} {'#' * int(40 * h / max(1, hist.max()))} {h}")
    print(
        "  bodies per sample: "
        + ", ".join(f"{b}: {(bodies == b).sum()}" for b in np.unique(bodies))
    )
    clip = args.clip_len
    print(
        f"  clips of {clip} frames that wrap past the end (overflow=loop), and the speed cap "
        f"would use instead (overflow=cap):"
    )
    for r in args.speeds:
        wrap = float((clip * r > lengths).mean())
        capped = [effective_speed(int(t), r, tuple(args.speeds), clip, "cap") for t in lengths]
        print(f"    r={r}: {100 * wrap:5.1f}% wrap; cap: mean speed {np.mean(capped):.2f}")
    if m.rejected:
        print(f"  rejected: {len(m.rejected)}")
        for r in m.rejected[:20]:
            print(f"    {r.get('sample_id', r.get('file'))}: {r['reason']}")
    return 0


def cmd_pretrain(args) -> int:
    from mcc.train import pretrain

    extra = {"data.path": args.data} if args.data else {}
    cfg = _config(PretrainConfig, presets.PRETRAIN, args.preset, args.set, extra)
    res = pretrain(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"pretraining done in {res['wall_time_s']:.0f}s; checkpoint {res['checkpoint']}")
    return 0


def cmd_evaluate(args) -> int:
    from mcc.evaluate import evaluate

    extra = {"data.path": args.data} if args.data else {}
    if args.protocol:
        extra["protocol"] = args.protocol
    cfg = _config(EvalConfig, presets.EVALUATE, args.preset, args.set, extra)
    ckpt = None if args.checkpoint in (None, "none") else args.checkpoint
    res = evaluate(cfg, ckpt, args.out, progress=not args.no_progress)
    print(
        f"{cfg.protocol} on {res['dataset']} ({res['train_samples']} labelled): "
        f"top-1 {res['top1']:.2f}  top-5 {res['top5']:.2f}  -> {args.out}/result.json"
    )
    return 0


def cmd_demo(args) -> int:
    """Prepare the synthetic set if missing, pretrain (small preset), then kNN and fine-tune
    from MCC and from scratch."""
    from mcc.evaluate import evaluate
    from mcc.shards import MANIFEST
    from mcc.synthetic import SyntheticConfig, generate
    from mcc.train import pretrain

    data, out = Path(args.data), Path(args.out)
    if not (data / MANIFEST).exists():
        print(f"preparing the synthetic dataset in {data}")
        generate(data, SyntheticConfig(), progress=not args.no_progress)
    pre = _config(PretrainConfig, presets.PRETRAIN, args.preset, args.set, {"data.path": str(data)})
    pretrain(pre, out / "pretrain", resume=True, progress=not args.no_progress)
    ckpt = str(out / "pretrain" / "checkpoint.pt")
    rows = []
    for protocol in ("knn", "finetune"):
        for name, c in (("MCC", ckpt), ("scratch", None)):
            ev = _config(
                EvalConfig,
                presets.EVALUATE,
                args.preset,
                [],
                {"data.path": str(data), "protocol": protocol},
            )
            res = evaluate(ev, c, out / f"{protocol}-{name.lower()}", progress=not args.no_progress)
            rows.append((protocol, name, res["top1"]))
    print("\nprotocol   init      top-1")
    for protocol, name, top1 in rows:
        print(f"{protocol:10s} {name:8s} {top1:6.2f}")
    (out / "summary.json").write_text(json.dumps(rows))
    print(f"\nruns in {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mcc", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("prepare", help="write a prepared dataset (Parquet shards + dataset.json)")
    q.add_argument("source", choices=["synthetic", "npz"])
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--src", help="npz: the .npz file")
    q.add_argument("--layout", help="npz: ntu25, openpose18 or a layout .json")
    q.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="synthetic: generator setting, e.g. --set num_classes=20 "
        "(keys: see mcc/synthetic.py SyntheticConfig)",
    )
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_prepare)

    q = sub.add_parser("inspect", help="counts, lengths, bodies, wrap-around rates, rejects")
    q.add_argument("data")
    q.add_argument("--clip-len", type=int, default=32)
    q.add_argument("--speeds", type=int, nargs="+", default=[1, 2, 4, 8])
    q.set_defaults(func=cmd_inspect)

    q = sub.add_parser(
        "pretrain",
        help="MCC self-supervised pretraining (Eq. 4)",
        epilog="config keys: " + ", ".join(valid_keys(PretrainConfig)),
    )
    q.add_argument("--data", help="prepared dataset folder (data.path)")
    q.add_argument("--out", required=True, help="run folder")
    q.add_argument("--preset", choices=sorted(presets.PRETRAIN), default="paper")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    q.add_argument("--resume", action="store_true", help="continue the run in --out")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_pretrain)

    q = sub.add_parser(
        "evaluate",
        help="kNN, linear evaluation or fine-tuning of an encoder",
        epilog="config keys: " + ", ".join(valid_keys(EvalConfig)),
    )
    q.add_argument("--data", help="prepared dataset folder (data.path)")
    q.add_argument(
        "--checkpoint",
        help="pretraining checkpoint or run folder; omit or 'none' "
        "for a random initialisation (training from scratch)",
    )
    q.add_argument("--protocol", choices=["knn", "linear", "finetune"])
    q.add_argument("--out", required=True, help="run folder")
    q.add_argument("--preset", choices=sorted(presets.EVALUATE), default="paper")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("demo", help="prepare the synthetic set, pretrain, evaluate (minutes)")
    q.add_argument("--data", default="data/synthetic")
    q.add_argument("--out", default="runs/demo")
    q.add_argument("--preset", choices=sorted(presets.PRETRAIN), default="demo")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.simplefilter("default")
    try:
        return args.func(args)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
