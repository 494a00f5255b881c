"""`python -m mcc {prepare,inspect,pretrain,evaluate,fuse,demo}`: the single-process CLI."""

from __future__ import annotations

import argparse
import json
import os
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


RAW_SOURCES = ("ntu60", "ntu120", "kinetics", "pkummd", "nwucla")


def raw_source(args):
    """The importer's Source for a raw dataset (mcc.datasets: ntu, kinetics, pkummd, nwucla)."""
    if not args.src:
        raise ConfigError(f"prepare {args.source} needs --src (the raw dataset's folder)")
    if args.source in ("ntu60", "ntu120"):
        from mcc.datasets import ntu

        return ntu.source(args.src, args.source, missing=args.missing, denoise=args.denoise)
    if args.source == "kinetics":
        from mcc.datasets import kinetics

        return kinetics.source(
            args.src,
            label_file=args.labels,
            split=args.split,
            classes_file=args.classes,
            label_from=args.label_from,
        )
    if args.source == "nwucla":
        from mcc.datasets import nwucla

        return nwucla.source(args.src)
    from mcc.datasets import pkummd

    return pkummd.source(args.src, unlisted=args.unlisted)


def cmd_prepare(args) -> int:
    t0 = time.time()
    strict_failures = []
    if args.source == "synthetic":
        from mcc.datasets.synthetic import generate, synthetic_config

        cfg = synthetic_config(parse_set_args(args.set))
        m = generate(args.out, cfg, progress=not args.no_progress)
    elif args.source == "npz":
        from mcc.datasets.npz import import_npz

        if not args.src or not args.layout:
            raise ConfigError("prepare npz needs --src FILE.npz and --layout NAME|FILE.json")
        m = import_npz(args.src, args.layout, args.out)
        strict_failures = m.rejected
    else:
        from mcc.datasets.prepare import NothingConverted, read_rejected, run

        source = raw_source(args)
        try:
            m = run(source, args.out, args.workers, args.files_per_shard, not args.no_progress)
        except NothingConverted as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        strict_failures = read_rejected(m, source)
    counts = ", ".join(f"{k} {v['samples']}" for k, v in m.counts.items())
    print(
        f"wrote {args.out}: {m.name}, {len(m.classes)} classes, {counts}, "
        f"{len(m.rejected)} rejected, {len(m.shards)} shard(s) in {time.time() - t0:.1f}s"
    )
    if not m.counts:
        print("error: no sample could be converted", file=sys.stderr)
        return 1
    if args.strict and strict_failures:
        print(
            f"error: --strict: {len(strict_failures)} sample(s) rejected, e.g. "
            f"{strict_failures[0]['sample_id']}: {strict_failures[0]['reason']} "
            f"(all in {args.out}/dataset.json)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_inspect(args) -> int:
    """Counts per split and class, lengths, bodies, wrap rates, rejects; from the metadata
    columns only, so a full NTU-size dataset inspects in seconds and little memory."""
    import numpy as np

    from mcc.sampling import effective_speed
    from mcc.shards import read_columns, read_manifest

    m = read_manifest(args.data)
    meta = read_columns(args.data, ["label", "frames", "bodies"])
    print(
        f"{m.name}: layout {m.layout.name} ({m.layout.num_joints} joints, channels "
        f"{','.join(m.layout.channels)}), {len(m.classes)} classes, source {m.source[:80]}"
    )
    benchmarks = m.benchmarks or {"": {"column": "split", "counts": m.counts}}
    for name, b in benchmarks.items():
        if name:
            print(f"  benchmark {name} (column {b['column']}; data.benchmark={name}):")
        for split, c in b["counts"].items():
            print(
                f"  {split}: {c['samples']} samples, per class min {min(c['per_class'])} "
                f"max {max(c['per_class'])}"
            )
    if args.classes:
        splits = list(m.counts)
        print("  per class: " + " / ".join(splits))
        for i, name in enumerate(m.classes):
            n = " / ".join(str(m.counts[s]["per_class"][i]) for s in splits)
            print(f"    {i:4d} {name[:40]:40s} {n}")
    lengths, bodies = np.array(meta["frames"]), np.array(meta["bodies"])
    if len(lengths):
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
            f"  clips of {clip} frames that wrap past the end (overflow=loop), and the speed "
            f"cap would use instead (overflow=cap):"
        )
        for r in args.speeds:
            wrap = float((clip * r > lengths).mean())
            capped = [effective_speed(int(t), r, tuple(args.speeds), clip, "cap") for t in lengths]
            print(f"    r={r}: {100 * wrap:5.1f}% wrap; cap: mean speed {np.mean(capped):.2f}")
    for key, value in m.extra.items():
        if isinstance(value, list):
            print(f"  {key}: {len(value)} (listed in dataset.json)")
    if m.rejected:
        print(f"  rejected: {len(m.rejected)}")
        for r in m.rejected[: args.show_rejected]:
            print(f"    {r.get('sample_id', r.get('file'))}: {r['reason']}")
        if len(m.rejected) > args.show_rejected:
            print(f"    ... {len(m.rejected) - args.show_rejected} more in dataset.json")
    return 0


def cmd_pretrain(args) -> int:
    from mcc.train import pretrain

    extra = {"data.path": args.data} if args.data else {}
    cfg = _config(PretrainConfig, presets.PRETRAIN, args.preset, args.set, extra)
    res = pretrain(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                   device=args.device, workers=args.loader_workers)  # fmt: skip
    print(f"pretraining done in {res['wall_time_s']:.0f}s; checkpoint {res['checkpoint']}")
    return 0


def cmd_evaluate(args) -> int:
    from mcc.evaluate import evaluate

    extra = {"data.path": args.data} if args.data else {}
    if args.protocol:
        extra["protocol"] = args.protocol
    cfg = _config(EvalConfig, presets.EVALUATE, args.preset, args.set, extra)
    ckpt = None if args.checkpoint in (None, "none") else args.checkpoint
    res = evaluate(cfg, ckpt, args.out, progress=not args.no_progress, device=args.device)
    print(
        f"{cfg.protocol} on {res['dataset']} ({res['train_samples']} labelled): "
        f"top-1 {res['top1']:.2f}  top-5 {res['top5']:.2f}  -> {args.out}/result.json"
    )
    return 0


def cmd_fuse(args) -> int:
    from mcc.fusion import fuse

    res = fuse(args.runs, args.out)
    members = ", ".join(f"{r['run']} {r['top1']:.2f}" for r in res["runs"])
    print(
        f"fusion of {len(res['runs'])} runs ({members}) on {res['test_samples']} test "
        f"samples: top-1 {res['top1']:.2f}  top-5 {res['top5']:.2f}  -> {args.out}/result.json"
    )
    return 0


def cmd_demo(args) -> int:
    """Prepare the synthetic set if missing, pretrain (small preset), then kNN and fine-tune
    from MCC and from scratch."""
    from mcc.datasets.synthetic import prepare_if_missing
    from mcc.evaluate import evaluate
    from mcc.train import pretrain

    data, out = Path(args.data), Path(args.out)
    prepare_if_missing(data, progress=not args.no_progress)
    pre = _config(PretrainConfig, presets.PRETRAIN, args.preset, args.set, {"data.path": str(data)})
    pretrain(pre, out / "pretrain", resume=True, progress=not args.no_progress,
             device=args.device, workers=args.loader_workers)  # fmt: skip
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
            res = evaluate(ev, c, out / f"{protocol}-{name.lower()}",
                           progress=not args.no_progress, device=args.device)  # fmt: skip
            rows.append((protocol, name, res["top1"]))
    print("\nprotocol   init      top-1")
    for protocol, name, top1 in rows:
        print(f"{protocol:10s} {name:8s} {top1:6.2f}")
    (out / "summary.json").write_text(json.dumps(rows))
    print(f"\nruns in {out}")
    return 0


def _no_progress(q: argparse.ArgumentParser) -> None:
    q.add_argument("--no-progress", action="store_true")


def _run_options(
    q: argparse.ArgumentParser, table: dict, default: str, resume: bool = False
) -> None:
    """--preset (a name in `table`), --set and --no-progress, the options of every command
    that runs a config; pretrain's --resume sits between them in its --help."""
    q.add_argument("--preset", choices=sorted(table), default=default)
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    if resume:
        q.add_argument("--resume", action="store_true", help="continue the run in --out")
    _no_progress(q)


def _device_options(q: argparse.ArgumentParser, loader: bool = False) -> None:
    """--device for the commands that train or evaluate in this process, and the sampling
    processes of pretraining (mcc/device.py)."""
    from mcc.device import DEVICE_HELP

    q.add_argument("--device", default="auto", help=DEVICE_HELP)
    if loader:
        q.add_argument("--loader-workers", type=int, metavar="N", help="processes that sample "
                       "the training clips (default: 0 on the CPU, up to 8 on a GPU)")  # fmt: skip


def _add_prepare(sub) -> None:
    q = sub.add_parser(
        "prepare",
        help="write a prepared dataset (Parquet shards + dataset.json)",
        description="Convert a dataset to Parquet shards + dataset.json. Raw imports run in "
        "a process pool, write each shard atomically and, rerun into the same --out, skip "
        "the shards a killed run finished. Bad samples are listed in dataset.json with a "
        "reason; the exit status is non-zero only when nothing converted (or with --strict).",
    )
    q.add_argument("source", choices=["synthetic", "npz", *RAW_SOURCES])
    q.add_argument("--out", required=True, help="output folder, or a URI such as s3://bucket/x")
    q.add_argument(
        "--src",
        help="npz: the .npz file; ntu60/ntu120: the folder of .skeleton files; kinetics: "
        "st-gcn's kinetics-skeleton folder (kinetics_train/, kinetics_val/ and their label "
        "files) or one folder of clip .json; pkummd: the folder with skeleton/, labels/, "
        "actions.tsv and splits/; nwucla: the folder of clip .json (all_sqe/)",
    )
    q.add_argument("--layout", help="npz: ntu25, kinect20, openpose18 or a layout .json")
    q.add_argument(
        "--missing",
        help="ntu60/ntu120: the official list of samples with missing skeletons (skipped and "
        "recorded); NTU_RGBD_samples_with_missing_skeletons.txt or the NTU120 one",
    )
    q.add_argument(
        "--denoise",
        action="store_true",
        help="ntu60/ntu120: also drop bodies that are very short or look like objects "
        "(PYSKL's stricter rule; default: the 2 bodies of largest motion energy)",
    )
    q.add_argument("--labels", help="kinetics, one folder: the label .json of its clips")
    q.add_argument(
        "--split", choices=["train", "test"], help="kinetics, one folder: its clips' split"
    )
    q.add_argument("--classes", help="kinetics: class names, one per line (label_name.txt)")
    q.add_argument(
        "--label-from",
        choices=["text", "index"],
        default="text",
        help="kinetics: which wins when a clip's label text and index disagree (listed in "
        "dataset.json either way)",
    )
    q.add_argument(
        "--unlisted",
        choices=["reject", "none"],
        default="reject",
        help="pkummd: a video in neither list of a split file is rejected, or kept with split "
        "'none'",
    )
    q.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)"
    )
    q.add_argument(
        "--files-per-shard",
        type=int,
        help="raw files per shard (default per dataset: about 30 MB a shard)",
    )
    q.add_argument(
        "--strict", action="store_true", help="exit non-zero when any sample was rejected"
    )
    q.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="synthetic: generator setting, e.g. --set variant=static-cues (adds "
        "per-subject bodies, cameras and an idle second person) or --set num_classes=20 "
        "(keys: see mcc/datasets/synthetic.py "
        "SyntheticConfig)",
    )
    _no_progress(q)
    q.set_defaults(func=cmd_prepare)


def _add_inspect(sub) -> None:
    q = sub.add_parser("inspect", help="counts, lengths, bodies, wrap-around rates, rejects")
    q.add_argument("data", help="prepared dataset: a folder or a URI such as s3://bucket/x")
    q.add_argument("--clip-len", type=int, default=32)
    q.add_argument("--speeds", type=int, nargs="+", default=[1, 2, 4, 8])
    q.add_argument("--classes", action="store_true", help="print the counts of every class")
    q.add_argument("--show-rejected", type=int, default=20, metavar="N", help="rejects to list")
    q.set_defaults(func=cmd_inspect)


def _add_pretrain(sub) -> None:
    q = sub.add_parser(
        "pretrain",
        help="MCC self-supervised pretraining (Eq. 4)",
        epilog="config keys: " + ", ".join(valid_keys(PretrainConfig)),
    )
    q.add_argument("--data", help="prepared dataset (data.path): a folder or a URI such as s3://bucket/x")
    q.add_argument("--out", required=True, help="run folder, or a URI such as s3://bucket/x")
    _run_options(q, presets.PRETRAIN, "paper", resume=True)
    _device_options(q, loader=True)
    q.set_defaults(func=cmd_pretrain)


def _add_evaluate(sub) -> None:
    q = sub.add_parser(
        "evaluate",
        help="kNN, linear evaluation or fine-tuning of an encoder",
        epilog="config keys: " + ", ".join(valid_keys(EvalConfig)),
    )
    q.add_argument("--data", help="prepared dataset (data.path): a folder or a URI such as s3://bucket/x")
    q.add_argument(
        "--checkpoint",
        help="pretraining checkpoint or run folder (MCC or a comparison pretext), or a "
        "fine-tuned run's (for transfer from a supervised model); omit or 'none' for a "
        "random initialisation (training from scratch)",
    )
    q.add_argument(
        "--protocol",
        choices=["knn", "linear", "finetune", "semi", "transfer"],
        help="semi: fine-tune on label_fraction (0 < f < 1, e.g. --set label_fraction=0.1) of "
        "each class; transfer: fine-tune a --checkpoint trained on another dataset",
    )
    q.add_argument("--out", required=True, help="run folder, or a URI such as s3://bucket/x")
    _run_options(q, presets.EVALUATE, "paper")
    _device_options(q)
    q.set_defaults(func=cmd_evaluate)


def _add_fuse(sub) -> None:
    q = sub.add_parser(
        "fuse",
        help="sum the test-set class scores of evaluation runs (e.g. 2s-AGCN joint + bone)",
    )
    q.add_argument("runs", nargs="+", metavar="RUN", help="evaluation run folders (2 or more)")
    q.add_argument("--out", required=True, help="run folder for the fused result")
    q.set_defaults(func=cmd_fuse)


def _add_demo(sub) -> None:
    q = sub.add_parser("demo", help="prepare the synthetic set, pretrain, evaluate (minutes)")
    q.add_argument("--data", default="data/synthetic")
    q.add_argument("--out", default="runs/demo")
    _run_options(q, presets.PRETRAIN, "demo")
    _device_options(q, loader=True)
    q.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mcc", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_prepare, _add_inspect, _add_pretrain, _add_evaluate, _add_fuse, _add_demo):
        add(sub)
    return p


def _first_line(e: BaseException) -> str:
    """The first line of an exception's text (pyarrow's S3 errors span several)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.simplefilter("default")
    try:
        return args.func(args)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # pyarrow's file systems: no such bucket, no credentials, no endpoint
        print(f"error: storage: {_first_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
