"""MCC pretraining against a random initialisation and the comparison pretexts, over seeds.

For each seed: pretrain with MCC (and with each comparison pretext given by --pretexts:
order, jigsaw, pace); then score every pretrained encoder and the same encoder at random
initialisation under each protocol of --protocols:

    knn       k nearest neighbours on the frozen features (baseline: random init)
    linear    linear classifier on the frozen features (baseline: random init)
    finetune  everything trained, all labels (baseline: scratch)
    semi      fine-tuned on each --fractions share of the labels of each class (baseline:
              scratch); every run folder keeps the ids it was given (labelled_ids.json)

Prints one row per protocol (semi: one per fraction): mean +- std (sample standard
deviation over seeds) per initialisation, MCC's difference to the best other one, marked
"not resolved" unless it is larger than twice the larger of the two spreads (mcc.stats), and
the mean wall time of one run. OUT/summary.md holds the command, that table and the pretraining
time; OUT/summary.json the command, per protocol the per-seed scores and wall times
(`protocols`), and the pretraining's wall time per seed (`pretrain_wall_time_s`). Finished
runs made with the same settings are reused, so an interrupted comparison continues where it
stopped; a finished run (pretraining or evaluation) made with other settings stops the script
with a message naming them rather than being reused or overwritten (mcc.runs.finished_run).

    python benchmarks/mcc_vs_scratch.py --data data/natops --out runs/compare \\
        [--seeds 0 1 2] [--preset small] [--pretexts mcc order jigsaw pace] \\
        [--protocols knn linear semi finetune] [--fractions 0.05 0.1] \\
        [--pretrain-set K=V ...] [--eval-set K=V ...] [--semi-set K=V ...] [--device auto]

--device runs every pretraining and evaluation there (mcc.device; default auto: the GPU when
there is one). It is not part of a run's settings, so runs finished on another device are
reused.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

from mcc import presets
from mcc.config import ConfigError, PretrainConfig, apply_overrides, parse_set_args
from mcc.device import DEVICE_HELP, resolve_device
from mcc.evaluate import evaluate, finished_evaluation
from mcc.runs import finished_run
from mcc.stats import mean_std, resolved
from mcc.tables import markdown_table
from mcc.train import pretrain

PROTOCOLS = ("knn", "linear", "finetune", "semi")
NAMES = {"mcc": "MCC", "order": "clip order", "jigsaw": "jigsaw", "pace": "pace"}


def row_name(protocol: str, fraction: float) -> str:
    return {"knn": "knn", "linear": "linear", "finetune": "finetune 100%",
            "semi": f"finetune {fraction:.0%}"}[protocol]  # fmt: skip


def run_seed(args, seed: int, rows: dict, times: dict) -> None:
    """Pretrain each pretext for `seed` and score every initialisation under every protocol;
    top-1 lands in rows[protocol row][initialisation], the run's wall time (s) in
    times[row][initialisation] (row "pretrain" for pretraining)."""
    encoders: dict[str, str | None] = {}
    for pretext in args.pretexts:
        pre = apply_overrides(
            PretrainConfig(),
            {**presets.PRETRAIN[args.preset], "data.path": args.data, "seed": str(seed),
             **parse_set_args(args.pretrain_set), "pretext": pretext},
        )  # fmt: skip
        # MCC's pretraining folder is plain `pretrain`, the other pretexts are suffixed
        run = args.out / f"seed{seed}" / ("pretrain" if pretext == "mcc" else f"pretrain-{pretext}")
        done = finished_run(run, pre)
        if done is None:
            print(f"seed {seed} pretraining {pretext} -> {run}", flush=True)
            done = pretrain(pre, run, resume=True, progress=False, device=args.device)
        wall = done["wall_time_s"]
        times.setdefault("pretrain", {}).setdefault(NAMES[pretext], []).append(wall)
        encoders[NAMES[pretext]] = str(run / "checkpoint.pt")
    runs = [(p, f) for p in args.protocols for f in (args.fractions if p == "semi" else [1.0])]
    for protocol, fraction in runs:
        baseline = "random init" if protocol in ("knn", "linear") else "scratch"
        over = {"knn": {"protocol": "knn"}, "linear": {"protocol": "linear"}, "finetune": {},
                "semi": {"label_fraction": str(fraction)}}[protocol]  # fmt: skip
        label = row_name(protocol, fraction)
        # the pretexts' configs differ only in `pretext`, which evaluation does not read
        own = parse_set_args(args.semi_set) if protocol == "semi" else {}
        cfg = presets.evaluation(pre, args.preset, {**parse_set_args(args.eval_set), **own, **over})
        for init, ckpt in {**encoders, baseline: None}.items():
            name = f"{label}-{init}".replace(" ", "_").replace("%", "pct")
            path = args.out / f"seed{seed}" / name
            res = finished_evaluation(cfg, path) or evaluate(
                cfg, ckpt, path, progress=False, device=args.device
            )
            rows.setdefault(label, {}).setdefault(init, []).append(res["top1"])
            times.setdefault(label, {}).setdefault(init, []).append(res["wall_time_s"])
            print(f"seed {seed} {label:14s} {init:12s} top-1 {res['top1']:6.2f}", flush=True)


def table(rows: dict, times: dict) -> tuple[str, dict]:
    """Markdown table (one row per protocol) and the summary written to summary.json; the
    last column is the mean wall time of one run, from `times` (as run_seed fills it)."""
    inits = list(dict.fromkeys(i for r in rows.values() for i in r if i != "MCC"))
    head = ["protocol", "MCC", *inits, "MCC - best other", "resolved", "s per run (MCC, others)"]
    lines, summary = [], {}
    for label, by_init in rows.items():
        stats = {i: mean_std(v) for i, v in by_init.items()}
        others = {i: s for i, s in stats.items() if i != "MCC"}
        best = max(others, key=lambda i: others[i][0])
        diff = stats["MCC"][0] - others[best][0]
        sure = resolved(by_init["MCC"], by_init[best])
        cells = [_mean_std_text(*stats[i]) if i in stats else "-" for i in ["MCC", *inits]]
        wall = ", ".join(f"{statistics.mean(times[label][i]):.0f}"
                         for i in ["MCC", *inits] if i in times[label])  # fmt: skip
        cells += [f"{diff:+.1f} ({best})", "yes" if sure else "not resolved", wall]
        lines.append([label, *cells])
        summary[label] = {"top1": by_init, "best_other": best, "difference": diff,
                          "resolved": sure, "wall_time_s": times[label]}  # fmt: skip
    return markdown_table(head, lines), summary


def _mean_std_text(mean: float, std: float | None) -> str:
    return f"{mean:.1f} +- {std if std is not None else float('nan'):.1f}"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset", default="small", choices=sorted(presets.PRETRAIN))
    p.add_argument(
        "--pretexts",
        nargs="+",
        default=["mcc"],
        choices=list(NAMES),
        help="pretraining objectives compared (mcc is always included)",
    )
    p.add_argument("--protocols", nargs="+", default=["knn", "finetune", "semi"], choices=PROTOCOLS)
    p.add_argument(
        "--fractions",
        "--fraction",
        type=float,
        nargs="+",
        default=[0.1],
        help="labelled share of each class for the semi rows, one row each",
    )
    p.add_argument("--pretrain-set", action="append", metavar="KEY=VALUE", default=[])
    p.add_argument("--eval-set", action="append", metavar="KEY=VALUE", default=[],
                   help="evaluation override for every protocol")  # fmt: skip
    p.add_argument(
        "--semi-set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="evaluation override for the semi rows only (after --eval-set)",
    )
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    args = p.parse_args()
    args.pretexts = list(dict.fromkeys(["mcc", *args.pretexts]))
    if not all(0 < f < 1 for f in args.fractions):
        p.error(f"--fractions {args.fractions}: each must lie strictly between 0 and 1")
    rows: dict[str, dict[str, list[float]]] = {}
    times: dict[str, dict[str, list[float]]] = {}
    try:
        resolve_device(args.device)  # a device this machine lacks: the error before any run
        for seed in args.seeds:
            run_seed(args, seed, rows, times)
    except ConfigError as e:  # a finished run made with other settings, or no such device
        sys.exit(f"error: {e}")
    text, summary = table(rows, times)
    pre = times["pretrain"]
    pre_line = "pretraining, s per seed: " + ", ".join(
        f"{name} {statistics.mean(ts):.0f}" for name, ts in pre.items()
    )
    command = shlex.join(["python", *sys.argv])
    head = f"{args.data}, preset {args.preset}, seeds {args.seeds}"
    print(f"\n{head}\n{text}\n{pre_line}")
    (args.out / "summary.json").write_text(json.dumps(
        {"command": command, "protocols": summary, "pretrain_wall_time_s": pre}, indent=2))
    (args.out / "summary.md").write_text(f"```\n{command}\n```\n\n{head}\n\n{text}\n\n{pre_line}\n")


if __name__ == "__main__":
    main()
