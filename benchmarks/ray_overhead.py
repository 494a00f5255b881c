"""What Ray costs: the single-process trainer against a 1-worker Ray Train run, same config.

Prints, in one run, with the same number of torch threads on both sides:
  - clips/s of `mcc.train.pretrain` (single process),
  - clips/s of `tune.train.run_pretraining` with 1 worker (the streaming Ray Data path, or
    --sampling exact / worker, + Ray Train),
  - their ratio (steady state: epochs after the first; target >= 0.95),
  - the data stage alone (one epoch of the streamed rows turned into views, as a worker does
    it, no model), in clips/s, and how many times the model's consumption it is (target
    >= 5), with the wait for its first batch.

    python benchmarks/ray_overhead.py [--data data/synthetic] [--preset small] [--epochs 4]
        [--threads 1] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcc import presets  # noqa: E402
from mcc.config import PretrainConfig, apply_overrides, parse_set_args  # noqa: E402
from mcc.datasets.synthetic import prepare_if_missing  # noqa: E402
from mcc.runs import RunDir  # noqa: E402
from mcc.shards import read_manifest  # noqa: E402
from mcc.train import pretrain  # noqa: E402


def steady(history: list[dict]) -> float:
    rates = [m["clips_per_s"] for m in history[1:]] or [history[0]["clips_per_s"]]
    return statistics.mean(rates)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--preset", default="small", choices=sorted(presets.PRETRAIN))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    p.add_argument("--sampling", default="ray-data", choices=["ray-data", "worker", "exact"])
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[])
    args = p.parse_args()
    prepare_if_missing(args.data, progress=False)
    cfg = apply_overrides(
        PretrainConfig(),
        {**presets.PRETRAIN[args.preset], "data.path": args.data, "threads": str(args.threads),
         "optim.epochs": str(args.epochs), **parse_set_args(args.set)},
    )  # fmt: skip
    import ray

    from tune.cluster import connect
    from tune.data import split_keys, stream_epoch, stream_train
    from tune.train import run_pretraining

    bs = cfg.optim.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        pretrain(cfg, Path(tmp) / "single", progress=False)
        single_wall = time.time() - t0
        single_hist = RunDir(Path(tmp) / "single").metrics()
        print(f"connecting: {connect()}", flush=True)
        t0 = time.time()
        res = run_pretraining(cfg, Path(tmp) / "ray", num_workers=1, sampling=args.sampling)
        ray_wall = time.time() - t0
        ray_hist = RunDir(Path(tmp) / "ray").metrics()

        # The data stage alone: one epoch of the streamed dataset, sampled as a worker does.
        t0 = time.time()
        keys = split_keys(cfg.data)
        n = len(keys.train)
        ds = stream_train(cfg, keys.carved)
        read_s = time.time() - t0
        manifest = read_manifest(cfg.data.path)
        t0 = time.time()
        first = None
        samples = 0
        for b in stream_epoch(ds, cfg, manifest.layout, manifest.max_bodies, 1, 0):
            samples += b["anchor"].shape[0]
            first = first or time.time() - t0
        data_s = time.time() - t0
    ray.shutdown()
    s_rate, r_rate = steady(single_hist), steady(ray_hist)
    data_rate = 3 * samples / data_s
    print()
    print(f"config: preset {args.preset}, {args.epochs} epochs, {n} samples, batch {bs}, "
          f"width {cfg.model.width}, {args.threads} torch thread(s) on both sides")  # fmt: skip
    print(f"single process    : {s_rate:8.1f} clips/s (steady), wall {single_wall:.1f} s")
    print(f"Ray Train 1 worker: {r_rate:8.1f} clips/s (steady), wall {ray_wall:.1f} s "
          f"(sampling: {res['sampling']})")  # fmt: skip
    print(f"ratio Ray / single: {r_rate / s_rate:8.3f}   (target >= 0.95)")
    print(
        f"Ray Data stage    : {data_rate:8.1f} clips/s over one epoch ({samples} samples in "
        f"{data_s:.1f} s, first batch after {first:.1f} s; keys + plan {read_s:.1f} s)"
    )
    print(f"data / model      : {data_rate / r_rate:8.1f} x   (target >= 5)")
    per_epoch = [(m["epoch"], m["clips_per_s"]) for m in ray_hist]
    print(f"per-epoch clips/s: single {[(m['epoch'], m['clips_per_s']) for m in single_hist]}")
    print(f"                   ray    {per_epoch}")


if __name__ == "__main__":
    main()
