"""Does the streaming pretraining path stay flat in memory as the dataset grows?

Generates synthetic datasets of 1x, 4x, 16x the default size (`mcc.datasets.synthetic`, more
training samples per class; cached under --work), starts a local Ray with a small object
store (--object-store-mb, default 200: the 16x set is several times larger), runs one epoch
of tune/train.py's run_pretraining per size (preset tiny) and prints per size: epoch wall
time, rows/s, peak object-store use, peak RSS of the driver and of each Train worker.

    python benchmarks/scale.py [--work /tmp/mcc-scale] [--sizes 1,4,16] [--object-store-mb 200]
        [--per-class 60] [--sampling auto] [--json out.json]

Peaks are polled every POLL_S seconds in a thread: the object store's bytes in use (the
raylet's store stats, as `ray memory --stats-only` reads them) and, with psutil, the RSS of
this process and of every process titled RayTrainWorker.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcc import presets  # noqa: E402
from mcc.config import PretrainConfig, apply_overrides  # noqa: E402
from mcc.datasets.synthetic import generate, synthetic_config  # noqa: E402

POLL_S = 0.2
MB = 1024 * 1024


def dataset(work: Path, size: int, per_class: int) -> Path:
    """The synthetic set with `size` x `per_class` training samples per class (cached)."""
    out = work / f"synthetic-x{size}-{per_class}"
    if not (out / "manifest.json").exists():
        cfg = synthetic_config({"train_per_class": str(size * per_class), "test_per_class": "2"})
        generate(out, cfg)
    return out


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*.parquet")) / MB


class Peaks:
    """Background poller of the peak object-store use and process RSS, while running."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.store = 0
        self.driver = 0
        self.workers: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _store_bytes(self) -> int:
        from ray._private.internal_api import get_memory_info_reply, get_state_from_address

        reply = get_memory_info_reply(get_state_from_address())
        return int(reply.store_stats.object_store_bytes_used)

    def _poll(self) -> None:
        me = self.psutil.Process()
        while not self._stop.is_set():
            self.driver = max(self.driver, me.memory_info().rss)
            for p in self.psutil.process_iter(["pid", "cmdline"]):
                try:
                    cmd = p.info["cmdline"] or [""]
                    if cmd[0].startswith("ray::") and "RayTrainWorker" in " ".join(cmd):
                        rss = p.memory_info().rss
                        self.workers[p.pid] = max(self.workers.get(p.pid, 0), rss)
                except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                    continue
            try:
                self.store = max(self.store, self._store_bytes())
            except Exception:  # the store stats are unavailable while Ray starts or stops
                pass
            self._stop.wait(POLL_S)


def one_epoch(data: Path, sampling: str, tmp: Path) -> dict:
    """One epoch of run_pretraining (preset tiny, 1 worker) on `data`, with its peaks."""
    from tune.train import run_pretraining

    cfg = apply_overrides(
        PretrainConfig(),
        {**presets.PRETRAIN["tiny"], "data.path": str(data), "optim.epochs": "1",
         "threads": "1"},
    )  # fmt: skip
    t0 = time.time()
    with Peaks() as peaks:
        res = run_pretraining(cfg, tmp, num_workers=1, sampling=sampling)
    wall = time.time() - t0
    final = res["final"]
    return {
        "train_samples": res["train_samples"],
        "sampling": res["sampling"],
        "parquet_mb": round(folder_mb(data), 1),
        "epoch_s": final.get("epoch_time_s"),
        "run_wall_s": round(wall, 1),
        "rows_per_s": final.get("clips_per_s"),
        "peak_store_mb": round(peaks.store / MB, 1),
        "peak_driver_rss_mb": round(peaks.driver / MB, 1),
        "peak_worker_rss_mb": [round(v / MB, 1) for v in peaks.workers.values()],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mcc-scale"))
    p.add_argument("--sizes", default="1,4,16")
    p.add_argument("--object-store-mb", type=int, default=200)
    p.add_argument("--per-class", type=int, default=60, help="training samples per class at 1x")
    p.add_argument("--sampling", default="auto", choices=["auto", "ray-data", "worker"])
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    import ray

    from tune.cluster import QUIET, TRIAL_DRIVER

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    sets = {s: dataset(work, s, args.per_class) for s in sizes}
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1]), **QUIET,
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}  # fmt: skip
    # address="local": a Ray of its own even where another runs on this machine (a plain
    # ray.init() would join that one and refuse the object-store size)
    ray.init(address="local", num_cpus=2, resources={TRIAL_DRIVER: 8},
             object_store_memory=args.object_store_mb * MB, runtime_env={"env_vars": env},
             logging_level="WARNING")  # fmt: skip
    rows = {}
    try:
        for s in sizes:
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                rows[s] = one_epoch(sets[s], args.sampling, Path(tmp) / "run")
            print(f"{s:>3}x: {json.dumps(rows[s])}", flush=True)
    finally:
        ray.shutdown()
    print(f"\nobject store {args.object_store_mb} MB; one epoch, preset tiny, 1 worker")
    print(f"{'size':>5} {'samples':>8} {'parquet MB':>10} {'epoch s':>8} {'rows/s':>8} "
          f"{'store MB':>9} {'driver MB':>10} {'worker MB':>10}")  # fmt: skip
    for s, r in rows.items():
        print(f"{s:>4}x {r['train_samples']:>8} {r['parquet_mb']:>10} {r['epoch_s']:>8} "
              f"{r['rows_per_s']:>8} {r['peak_store_mb']:>9} {r['peak_driver_rss_mb']:>10} "
              f"{max(r['peak_worker_rss_mb'], default=0):>10}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
