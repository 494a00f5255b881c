"""Throughput and memory of the NTU `.skeleton` import (mcc.datasets.ntu through
mcc.datasets.prepare.run).

Replicates the real `.skeleton` files in `--src` (e.g. the 4 NTU files of the real sample
data, MCC_SHARED_DATA/ntu) to `--files` files with distinct valid NTU60 names (hard links
where possible, so the copies cost no disk), then imports them with
1 and with 2 worker processes, each configuration in a fresh subprocess so that its peak
memory is its own. Prints files/s, files/s per core, MB/s of raw text, files per CPU-second
(user + system time of the parent and its pool: the figure that other load on a shared
machine does not distort), the peak RSS of the parent and of the largest pool child, and
the extrapolated wall time for all of NTU60 (56,880 files) on 2 cores. Also times
`mcc.datasets.ntu.read` alone in one process (parse + body selection, no Parquet writing) to
separate parsing from the pipeline's cost.

    python benchmarks/prepare_ntu.py --src DIR [--files 2000] [--workers 1 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import product
from pathlib import Path

NTU60_FILES = 56_880


def ntu60_names(n: int) -> list[str]:
    """n distinct valid NTU60 names (setup 1-17, camera 1-3, performer 1-40, action 1-60)."""
    grid = product(range(1, 18), range(1, 4), range(1, 41), range(1, 3), range(1, 61))
    names = []
    for (s, c, p, r, a), _ in zip(grid, range(n)):
        names.append(f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}")
    return names


def replicate(src: Path, dst: Path, n: int) -> int:
    """Fill dst with n files cycling through the `.skeleton` files of src; returns their
    total bytes."""
    real = sorted(src.glob("*.skeleton"))
    if not real:
        sys.exit(f"no NTU .skeleton files in {src} (--src: the folder of real NTU files)")
    total = 0
    for i, name in enumerate(ntu60_names(n)):
        src, out = real[i % len(real)], dst / f"{name}.skeleton"
        try:
            os.link(src, out)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(src, out)
        total += src.stat().st_size
    return total


def source_shape(files: list[Path]) -> tuple[float, float]:
    """The mean frames and bodies of the source files."""
    from mcc.datasets import ntu

    parsed = [ntu.parse_skeleton(p.read_bytes().decode("latin-1")) for p in files]
    return (
        sum(s.num_frames for s in parsed) / len(parsed),
        sum(len(s.body_ids) for s in parsed) / len(parsed),
    )


def rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def one(src: str, out: str, workers: int) -> dict:
    """One configuration (runs in its own process): workers=0 times `read` alone."""
    from mcc.datasets import ntu
    from mcc.datasets.prepare import run
    from mcc.shards import Sample

    source = ntu.source(src, "ntu60")
    t0, c0 = time.perf_counter(), cpu_seconds()
    if workers == 0:
        samples = sum(isinstance(x, Sample) for u in source.units for x in ntu.read(u))
    else:
        m = run(source, out, workers=workers, progress=False)
        samples = sum(c["samples"] for c in m.counts.values())
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": cpu_seconds() - c0,
        "files": len(source.units),
        "samples": samples,
        "parent_mb": rss_mb(resource.RUSAGE_SELF),
        "child_mb": rss_mb(resource.RUSAGE_CHILDREN),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, help="the folder of real NTU .skeleton files to replicate")
    ap.add_argument("--files", type=int, default=2000, help="number of replicated files")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="pool sizes")
    ap.add_argument("--keep", help="replicate into this folder and keep it (default: temp)")
    ap.add_argument("--one", nargs=3, metavar=("SRC", "OUT", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], int(args.one[2]))))
        return
    if args.src is None:
        ap.error("--src DIR is required: the folder of real NTU .skeleton files")

    tmp = Path(args.keep or tempfile.mkdtemp(prefix="ntu_bench_"))
    raw = tmp / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    nbytes = replicate(args.src, raw, args.files)
    sources = sorted(args.src.glob("*.skeleton"))
    shape = source_shape(sources)
    print(
        f"{args.files} files ({nbytes / 2**20:.0f} MB of text) replicated from the {len(sources)} "
        f"files of {args.src} in {raw}; {os.cpu_count()} CPU cores"
    )
    rows = []
    try:
        for workers in [0, *args.workers]:
            out = tmp / f"out_w{workers}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, __file__, "--one", str(raw), str(out), str(workers)]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
            res["workers"] = workers
            rows.append(res)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"{'configuration':<26} {'wall s':>6} {'files/s':>7} {'/core':>5} {'MB/s':>5} "
        f"{'CPU s':>6} {'files/CPU-s':>11} {'parent MB':>9} {'child MB':>8}"
    )
    for r in rows:
        cores = max(1, r["workers"])
        label = "ntu.read only, 1 process" if r["workers"] == 0 else f"run(workers={cores})"
        fps = r["files"] / r["seconds"]
        child = f"{r['child_mb']:8.0f}" if r["workers"] > 1 else f"{'-':>8}"
        print(
            f"{label:<26} {r['seconds']:6.1f} {fps:7.0f} {fps / cores:5.0f} "
            f"{nbytes / 2**20 / r['seconds']:5.0f} {r['cpu_seconds']:6.1f} "
            f"{r['files'] / r['cpu_seconds']:11.0f} {r['parent_mb']:9.0f} {child}"
        )
    two = [r for r in rows if r["workers"] == 2]
    if two:
        fps = two[0]["files"] / two[0]["seconds"]
        # CPU time is what a busy machine cannot hide: 2 idle cores give 2 CPU-s per second
        ideal = 2 * two[0]["files"] / two[0]["cpu_seconds"]
        print(
            f"extrapolated, all of NTU60 ({NTU60_FILES:,} files) on 2 cores: "
            f"{NTU60_FILES / fps / 60:.1f} min at the measured {fps:.0f} files/s, "
            f"{NTU60_FILES / ideal / 60:.1f} min on 2 idle cores ({ideal:.0f} files/s from its CPU "
            f"time; the {len(sources)} source files average {shape[0]:.0f} frames and "
            f"{shape[1]:.2f} bodies)"
        )


if __name__ == "__main__":
    main()
