"""MCC pretraining against a random initialisation, over seeds.

For each seed: pretrain with MCC; then kNN top-1 of the MCC encoder and of the same encoder
at random initialisation; fine-tune top-1 from MCC and from scratch with the same epochs,
with all labels and with a fraction of the labels per class. Prints mean +- std (sample
standard deviation over seeds) and the difference, and marks a difference smaller than twice
the larger spread as "not resolved". Finished runs (a result.json) are reused, so an
interrupted comparison continues where it stopped.

    python benchmarks/mcc_vs_scratch.py --data data/synthetic --out runs/compare \\
        [--seeds 0 1 2] [--preset small] [--pretrain-set K=V ...] [--eval-set K=V ...]
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


def cached(path: Path, run):
    f = path / "result.json"
    if f.exists():
        return json.loads(f.read_text())
    return run()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset", default="small", choices=sorted(presets.PRETRAIN))
    p.add_argument("--fraction", type=float, default=0.1, help="labelled share for semi rows")
    p.add_argument("--pretrain-set", action="append", metavar="KEY=VALUE", default=[])
    p.add_argument("--eval-set", action="append", metavar="KEY=VALUE", default=[])
    args = p.parse_args()
    out = Path(args.out)
    rows: dict[str, list[float]] = {}
    for seed in args.seeds:
        pre = apply_overrides(
            PretrainConfig(),
            {**presets.PRETRAIN[args.preset], "data.path": args.data, "seed": str(seed),
             **parse_set_args(args.pretrain_set)},
        )  # fmt: skip
        run = out / f"seed{seed}" / "pretrain"
        if not (run / "result.json").exists():
            pretrain(pre, run, resume=True, progress=False)
        ckpt = str(run / "checkpoint.pt")
        cells = [
            ("knn", "MCC", ckpt, {"protocol": "knn"}),
            ("knn", "random init", None, {"protocol": "knn"}),
            ("finetune 100%", "MCC", ckpt, {}),
            ("finetune 100%", "scratch", None, {}),
            (f"finetune {args.fraction:.0%}", "MCC", ckpt, {"label_fraction": str(args.fraction)}),
            (f"finetune {args.fraction:.0%}", "scratch", None,
             {"label_fraction": str(args.fraction)}),
        ]  # fmt: skip
        for protocol, init, c, over in cells:
            cfg = presets.evaluation(pre, args.preset, {**parse_set_args(args.eval_set), **over})
            name = f"{protocol}-{init}".replace(" ", "_").replace("%", "pct")
            path = out / f"seed{seed}" / name
            res = cached(path, lambda: evaluate(cfg, c, path, progress=False))  # noqa: B023
            rows.setdefault(f"{protocol}|{init}", []).append(res["top1"])
            print(f"seed {seed} {protocol:14s} {init:12s} top-1 {res['top1']:6.2f}", flush=True)
    print(f"\n{args.data}, preset {args.preset}, seeds {args.seeds}")
    print("| protocol | MCC | baseline | difference | resolved |\n|---|---|---|---|---|")
    protocols = dict.fromkeys(k.split("|")[0] for k in rows)
    summary = {}
    for protocol in protocols:
        mcc = rows[f"{protocol}|MCC"]
        base = rows.get(f"{protocol}|scratch") or rows[f"{protocol}|random init"]
        mean_m, mean_b = statistics.mean(mcc), statistics.mean(base)
        sd_m = statistics.stdev(mcc) if len(mcc) > 1 else float("nan")
        sd_b = statistics.stdev(base) if len(base) > 1 else float("nan")
        diff = mean_m - mean_b
        resolved = abs(diff) > 2 * max(sd_m, sd_b)
        summary[protocol] = {"mcc": mcc, "baseline": base, "difference": diff,
                             "resolved": resolved}  # fmt: skip
        print(f"| {protocol} | {mean_m:.1f} +- {sd_m:.1f} | {mean_b:.1f} +- {sd_b:.1f} | "
              f"{diff:+.1f} | {'yes' if resolved else 'not resolved'} |")  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
