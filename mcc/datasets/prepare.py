"""The import runner that every raw-dataset importer (NTU, Kinetics, PKU-MMD) goes through.

An importer describes its input as a `Source`: an ordered list of work units (usually one
raw file each) and a top-level `read` function that turns one unit into samples and
rejections. `run` maps `read` over the units in a process pool, writes every `files_per_shard`
units as one Parquet shard through the shared `ShardWriter`, and records each finished chunk
in `OUT/.progress/`: a killed `prepare` leaves no half file (each file is written whole),
and a rerun skips the chunks that finished. At most one chunk of samples (plus what the pool
has in flight) is in memory at a time.

Bad data never raises out of `read`: it comes back as a `Reject` with a one-line reason and
ends in the manifest's `rejected` list.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mcc import files
from mcc.layouts import Layout
from mcc.shards import Manifest, Sample, ShardWriter

PROGRESS = ".progress"


@dataclass(frozen=True)
class Reject:
    """A raw sample (or a whole file) that could not be converted, and why (one line)."""

    sample_id: str
    reason: str


@dataclass
class Source:
    """What an importer hands the runner.

    units: picklable work items in a fixed order (their order fixes the shard contents, so
        it must not depend on the file system's listing order: sort it).
    read: a module-level function, unit -> iterable of Sample | Reject; it runs in worker
        processes and must catch its own bad-data errors.
    benchmarks: the dataset's benchmark names; the first is stored in the `split` column,
        the others in `split_<name>` columns (Sample.benchmarks holds their values).
    rejected: rejections known before reading (e.g. the official missing-skeleton list).
    """

    name: str
    layout: Layout
    classes: list[str]
    source: str
    units: list
    read: Callable[[object], Iterable[Sample | Reject]]
    benchmarks: tuple[str, ...] = ()
    rejected: list[Reject] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    files_per_shard: int = 500  # units per shard: aim at a few tens of MB per shard


def one_line(e: BaseException) -> str:
    """An exception's message as one short line, for a Reject reason."""
    return " ".join(str(e).split())[:300]


class NothingConverted(ValueError):
    """Not a single sample could be converted (the message says why)."""


def _chunk_record(out: str, k: int) -> str:
    return files.join(out, PROGRESS, f"chunk-{k:05d}.json")


def _write_json(path: str, obj) -> None:
    """One progress record, written whole (atomically on disk, one upload to a store)."""
    files.write_whole(path, json.dumps(obj))


def _read_json(path: str):
    """A progress record; None when there is none."""
    try:
        return json.loads(files.read_bytes(path))
    except FileNotFoundError:
        return None


def _check_same_job(out: str, job: dict) -> None:
    """A rerun may only finish the same import: same source, units and chunking."""
    f = files.join(out, PROGRESS, "job.json")
    before = _read_json(f)
    if before is not None:
        if before != job:
            changed = sorted(k for k in job if before.get(k) != job[k])
            raise ValueError(
                f"{out} holds an unfinished or finished import of other input (differs in "
                f"{', '.join(changed)}); use another --out or delete {out}"
            )
    else:
        _write_json(f, job)


def _results(source: Source, units: list, workers: int) -> Iterator[list]:
    """source.read over units, in order; in `workers` processes when workers > 1."""
    if workers <= 1:
        yield from map(source.read, units)
        return
    # spawn: the children import mcc afresh instead of inheriting the parent's threads.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(source.read, units, chunksize=4)


def run(
    source: Source,
    out: str | Path,
    workers: int = 2,
    files_per_shard: int | None = None,
    progress: bool = True,
) -> Manifest:
    """Import `source` into `out` (Parquet shards + dataset.json); see the module docstring.

    Every `files_per_shard` units form one chunk, written as one shard `part-NNNNN.parquet`
    (none when every unit of the chunk was rejected) and recorded in `.progress/`; a rerun
    into the same folder skips recorded chunks. Raises NothingConverted when no sample at all
    could be converted (the manifest, with every rejection, is still written).
    """
    out = str(out)
    files.make_dirs(files.join(out, PROGRESS))
    per_shard = files_per_shard or source.files_per_shard
    if per_shard < 1:
        raise ValueError(f"files_per_shard must be >= 1, got {per_shard}")
    _check_same_job(
        out,
        {"name": source.name, "source": source.source, "units": len(source.units),
         "files_per_shard": per_shard},
    )  # fmt: skip
    chunks = [source.units[i : i + per_shard] for i in range(0, len(source.units), per_shard)]
    writer = ShardWriter(
        out, source.name, source.layout, source.classes, source.source,
        shard_mb=float("inf"), benchmarks=source.benchmarks,
    )  # fmt: skip
    records = {k: _chunk_record(out, k) for k in range(len(chunks))}
    done = {k: rec for k, f in records.items() if (rec := _read_json(f)) is not None}
    todo = [k for k in range(len(chunks)) if k not in done]
    bar = _progress_bar(len(source.units), sum(len(chunks[k]) for k in done), progress)
    results = _results(source, [u for k in todo for u in chunks[k]], workers)
    for k in todo:
        rejected = []
        for _ in chunks[k]:
            for item in next(results):
                if isinstance(item, Reject):
                    rejected.append({"sample_id": item.sample_id, "reason": item.reason})
                    continue
                try:  # the writer's own checks (shape, label, finite values) catch what
                    writer.add(item)  # an importer let through: a reject, not a crash
                except ValueError as e:
                    rejected.append({"sample_id": item.sample_id, "reason": one_line(e)})
            bar.update(1)
        name = writer.flush(f"part-{k:05d}.parquet")
        done[k] = {"shards": [name] if name else [], "rejected": rejected}
        _write_json(records[k], done[k])
    bar.close()
    writer.manifest.rejected = [{"sample_id": r.sample_id, "reason": r.reason}
                                for r in source.rejected]  # fmt: skip
    for k in sorted(done):
        for name in done[k]["shards"]:
            writer.adopt(name)
        writer.manifest.rejected += done[k]["rejected"]
    writer.manifest.shards.sort()
    manifest = writer.close(extra=source.extra)
    if not manifest.counts:
        raise NothingConverted(
            f"no sample of {source.name} could be converted "
            f"({len(manifest.rejected)} rejected; reasons in {out}/dataset.json)"
        )
    return manifest


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="file", disable=not enabled, desc="prepare")


def read_rejected(manifest: Manifest, source: Source) -> list[dict]:
    """The rejections found while reading (not the ones known beforehand, such as the
    official missing-skeleton list): what `--strict` fails on."""
    known = {(r.sample_id, r.reason) for r in source.rejected}
    return [r for r in manifest.rejected if (r["sample_id"], r["reason"]) not in known]
