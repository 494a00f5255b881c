"""Which randomness decides whether an MCC pretraining leaves its InfoNCE plateau: the initial
weights or the data stream. A probe, not part of the method.

A pretraining run's seed draws both its initial weights and its data stream (clip starts,
speeds, augmentation, batch order, dropout, the memory queue's initial keys). This script
pretrains with the seed --data-seed for the data stream but with the initial weights (the
online encoder and heads, which the key encoder copies) that the seed --init-seed would
draw, then scores the encoder by kNN top-1 on the test split (the preset's evaluation
recipe, as benchmarks/mcc_vs_scratch.py scores it). With --init-seed equal to --data-seed
the run is the ordinary pretraining of that seed.

    python experiments/seed_split.py --data data/synthetic_nostatic --out runs/split_i2_d0 \
        --init-seed 2 --data-seed 0 [--preset small] [--pretrain-set K=V ...] [--eval-set K=V ...]

Prints the InfoNCE term every 5 epochs and the kNN top-1; writes OUT/seeds.json, OUT/pretrain
(whose config records the data seed as `seed`) and OUT/knn. An interrupted run continues
where it stopped; a rerun with other seeds on the same OUT is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from mcc_vs_scratch import cached  # noqa: E402  (benchmarks/ is on sys.path)

import mcc.train  # noqa: E402
from mcc import presets  # noqa: E402
from mcc.config import PretrainConfig, apply_overrides, parse_set_args  # noqa: E402
from mcc.evaluate import evaluate  # noqa: E402
from mcc.runs import RunDir  # noqa: E402


def with_init_seed(build, init_seed: int):
    """`build` (mcc.train.build_training) drawing its weights as seed `init_seed` would, and
    leaving torch's generator as it found it."""

    def wrapped(cfg, layout):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            return build(cfg, layout)

    return wrapped


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--init-seed", type=int, required=True)
    p.add_argument("--data-seed", type=int, required=True)
    p.add_argument("--preset", default="small", choices=sorted(presets.PRETRAIN))
    p.add_argument("--pretrain-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--eval-set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()

    pre = apply_overrides(
        PretrainConfig(),
        {**presets.PRETRAIN[args.preset], "data.path": args.data, "seed": str(args.data_seed),
         **parse_set_args(args.pretrain_set)},
    )  # fmt: skip
    seeds = {"init_seed": args.init_seed, "data_seed": args.data_seed}
    record = args.out / "seeds.json"
    if record.exists() and json.loads(record.read_text()) != seeds:
        sys.exit(f"{args.out} holds a run with {record.read_text().strip()}, not {seeds}")
    args.out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(seeds) + "\n")
    run = args.out / "pretrain"
    if not (run / "result.json").exists():
        mcc.train.build_training = with_init_seed(mcc.train.build_training, args.init_seed)
        mcc.train.pretrain(pre, run, resume=True, progress=False)
    history = RunDir(run).metrics()
    nce = "  ".join(
        f"{h['epoch'] + 1}:{h['nce']:.2f}" for h in history if h["epoch"] % 5 == 4 and "nce" in h
    )
    print(f"init seed {args.init_seed}, data seed {args.data_seed}  InfoNCE by epoch  {nce}")
    cfg = presets.evaluation(pre, args.preset, {**parse_set_args(args.eval_set), "protocol": "knn"})
    knn = args.out / "knn"
    res = cached(knn, lambda: evaluate(cfg, str(run / "checkpoint.pt"), knn, progress=False))
    print(f"init seed {args.init_seed}, data seed {args.data_seed}  kNN top-1 {res['top1']:.2f}")


if __name__ == "__main__":
    main()
