"""MCC pretraining against a random initialisation and the comparison pretexts, over seeds.

For each seed: pretrain with MCC (and with each comparison pretext given by --pretexts:
order, jigsaw, pace); then score every pretrained encoder and the same encoder at random
initialisation under each protocol of --protocols:

    knn       k nearest neighbours on the frozen features (baseline: random init)
    linear    linear classifier on the frozen features (baseline: random init)
    finetune  everything trained, all labels (baseline: scratch)
    semi      fine-tuned on --fraction of the labels of each class (baseline: scratch)

Prints one row per protocol: mean +- std (sample standard deviation over seeds) per
initialisation, and MCC's difference to the best other one, marked "not resolved" when it
is smaller than twice the larger of the two spreads. Finished runs (a result.json) are
reused, so an interrupted comparison continues where it stopped.

    python benchmarks/mcc_vs_scratch.py --data data/natops --out runs/compare \\
        [--seeds 0 1 2] [--preset small] [--pretexts mcc order jigsaw pace] \\
        [--protocols knn linear semi finetune] [--pretrain-set K=V ...] [--eval-set K=V ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from mcc import presets
from mcc.config import PretrainConfig, apply_overrides, parse_set_args
from mcc.evaluate import evaluate
from mcc.train import pretrain

PROTOCOLS = ("knn", "linear", "finetune", "semi")
NAMES = {"mcc": "MCC", "order": "clip order", "jigsaw": "jigsaw", "pace": "pace"}


def cached(path: Path, run):
    f = path / "result.json"
    if f.exists():
        return json.loads(f.read_text())
    return run()


def row_name(protocol: str, fraction: float) -> str:
    return {"knn": "knn", "linear": "linear", "finetune": "finetune 100%",
            "semi": f"finetune {fraction:.0%}"}[protocol]  # fmt: skip


def run_seed(args, seed: int, rows: dict[str, dict[str, list[float]]]) -> None:
    """Pretrain each pretext for `seed` and score every initialisation under every protocol;
    top-1 lands in rows[protocol row][initialisation]."""
    encoders: dict[str, str | None] = {}
    for pretext in args.pretexts:
        pre = apply_overrides(
            PretrainConfig(),
            {**presets.PRETRAIN[args.preset], "data.path": args.data, "seed": str(seed),
             **parse_set_args(args.pretrain_set), "pretext": pretext},
        )  # fmt: skip
        # MCC keeps the folder names of the first version of this script, so its runs are reused
        run = args.out / f"seed{seed}" / ("pretrain" if pretext == "mcc" else f"pretrain-{pretext}")
        if not (run / "result.json").exists():
            print(f"seed {seed} pretraining {pretext} -> {run}", flush=True)
            pretrain(pre, run, resume=True, progress=False)
        encoders[NAMES[pretext]] = str(run / "checkpoint.pt")
    for protocol in args.protocols:
        baseline = "random init" if protocol in ("knn", "linear") else "scratch"
        over = {"knn": {"protocol": "knn"}, "linear": {"protocol": "linear"}, "finetune": {},
                "semi": {"label_fraction": str(args.fraction)}}[protocol]  # fmt: skip
        label = row_name(protocol, args.fraction)
        # the pretexts' configs differ only in `pretext`, which evaluation does not read
        cfg = presets.evaluation(pre, args.preset, {**parse_set_args(args.eval_set), **over})
        for init, ckpt in {**encoders, baseline: None}.items():
            name = f"{label}-{init}".replace(" ", "_").replace("%", "pct")
            path = args.out / f"seed{seed}" / name
            res = cached(path, lambda: evaluate(cfg, ckpt, path, progress=False))  # noqa: B023
            rows.setdefault(label, {}).setdefault(init, []).append(res["top1"])
            print(f"seed {seed} {label:14s} {init:12s} top-1 {res['top1']:6.2f}", flush=True)


def mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else float("nan")


def table(rows: dict[str, dict[str, list[float]]]) -> tuple[str, dict]:
    """Markdown table (one row per protocol) and the summary written to summary.json."""
    inits = list(dict.fromkeys(i for r in rows.values() for i in r if i != "MCC"))
    head = ["protocol", "MCC", *inits, "MCC - best other", "resolved"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    summary = {}
    for label, by_init in rows.items():
        stats = {i: mean_sd(v) for i, v in by_init.items()}
        others = {i: s for i, s in stats.items() if i != "MCC"}
        best = max(others, key=lambda i: others[i][0])
        diff = stats["MCC"][0] - others[best][0]
        resolved = abs(diff) > 2 * max(stats["MCC"][1], others[best][1])
        cells = [f"{stats[i][0]:.1f} +- {stats[i][1]:.1f}" if i in stats else "-"
                 for i in ["MCC", *inits]]  # fmt: skip
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {diff:+.1f} ({best}) | {'yes' if resolved else 'not resolved'} |"
        )
        summary[label] = {"top1": by_init, "best_other": best, "difference": diff,
                          "resolved": resolved}  # fmt: skip
    return "\n".join(lines), summary


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
    p.add_argument("--fraction", type=float, default=0.1, help="labelled share for semi rows")
    p.add_argument("--pretrain-set", action="append", metavar="KEY=VALUE", default=[])
    p.add_argument("--eval-set", action="append", metavar="KEY=VALUE", default=[])
    args = p.parse_args()
    args.pretexts = list(dict.fromkeys(["mcc", *args.pretexts]))
    rows: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        run_seed(args, seed, rows)
    text, summary = table(rows)
    print(f"\n{args.data}, preset {args.preset}, seeds {args.seeds}\n{text}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
