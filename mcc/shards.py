"""Prepared datasets: Parquet shards plus a `dataset.json` manifest.

Every importer (synthetic, .npz, and the raw-dataset importers) writes through `ShardWriter`.

Shard schema (one row per sequence, true length, no padding):
    sample_id  string
    label      int32     class index into the manifest's `classes`
    split      string    "train" / "test" (the default benchmark)
    subject    int32     performer id, -1 if unknown
    bodies     int32     M
    frames     int32     T
    joints     int32     V
    channels   int32     C
    data       list<float32>   M*T*V*C values in (bodies, frames, joints, channels) order
    split_<b>  string    only for datasets with several benchmarks (NTU x-view, x-setup,
                         PKU-MMD x-view): the split of benchmark <b>; `split` holds the first
Readable as-is by pyarrow, pandas and DuckDB. Each benchmark is a column of the same shards,
never a second copy of the joints; `data.benchmark` picks one.

A dataset's folder is a local path or a URI (`s3://bucket/ntu60`; mcc/files.py): it is read
and written through pyarrow's file systems, each shard written whole and the manifest last,
so a reader never sees a half-written dataset.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mcc import files
from mcc.layouts import Layout, layout_from_dict
from mcc.untrusted import float32_problem

MANIFEST = "dataset.json"
FORMAT_VERSION = 1

SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("label", pa.int32()),
        ("split", pa.string()),
        ("subject", pa.int32()),
        ("bodies", pa.int32()),
        ("frames", pa.int32()),
        ("joints", pa.int32()),
        ("channels", pa.int32()),
        ("data", pa.list_(pa.float32())),
    ]
)


@dataclass
class Sample:
    """One sequence. joints: float32 (M, T, V, C)."""

    sample_id: str
    label: int
    split: str
    joints: np.ndarray
    subject: int = -1
    benchmarks: dict[str, str] = field(default_factory=dict)  # other benchmarks' splits

    @property
    def num_frames(self) -> int:
        return self.joints.shape[1]


@dataclass
class Manifest:
    name: str
    layout: Layout
    classes: list[str]
    source: str
    counts: dict = field(default_factory=dict)  # {split: {"samples": n, "per_class": [...]}}
    rejected: list = field(default_factory=list)  # [{"sample_id"/"file", "reason"}]
    shards: list = field(default_factory=list)
    max_bodies: int = 1
    extra: dict = field(default_factory=dict)
    # {name: {"column": "split" | "split_<name>", "counts": {split: ...}}}; the first is the
    # default benchmark, stored in `split` (and in `counts`). Empty: one benchmark, `split`.
    benchmarks: dict = field(default_factory=dict)

    def split_column(self, benchmark: str = "") -> str:
        """The shard column holding the splits of `benchmark` ("" = the default)."""
        if not benchmark:
            return "split"
        if benchmark not in self.benchmarks:
            have = sorted(self.benchmarks) or ["(none: this dataset has one split)"]
            raise ValueError(
                f"dataset {self.name!r} has no benchmark {benchmark!r}; it has {', '.join(have)}"
            )
        return self.benchmarks[benchmark]["column"]

    def to_json(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "layout": self.layout.to_json(),
            "classes": self.classes,
            "num_classes": len(self.classes),
            "source": self.source,
            "max_bodies": self.max_bodies,
            "counts": self.counts,
            "shards": self.shards,
            "rejected": self.rejected,
            **({"benchmarks": self.benchmarks} if self.benchmarks else {}),
            **({"extra": self.extra} if self.extra else {}),
        }


def split_columns(benchmarks: tuple[str, ...]) -> dict[str, str]:
    """Benchmark name -> shard column: the first benchmark in `split`, the others in
    `split_<name>`."""
    return {b: "split" if i == 0 else f"split_{b}" for i, b in enumerate(benchmarks)}


class ShardWriter:
    """Buffers samples and writes Parquet shards, each atomically (temporary name, then
    rename), then the manifest on `close()`.

    Streaming importers (synthetic, .npz) let it cut a shard every `shard_mb` MB; the import
    runner (`mcc.datasets.prepare`) names each shard itself with `flush(name)` and `adopt`s the
    shards a killed run already finished. The manifest's counts are read back from the shards' label
    and split columns, so they always describe what is on disk.
    """

    def __init__(
        self,
        out_dir: str | Path,
        name: str,
        layout: Layout,
        classes: list[str],
        source: str,
        shard_mb: float = 32.0,
        row_group_rows: int = 64,
        benchmarks: tuple[str, ...] = (),
    ) -> None:
        self.out = str(out_dir)
        files.make_dirs(self.out)
        self.manifest = Manifest(name=name, layout=layout, classes=list(classes), source=source)
        self.shard_bytes = shard_mb * 2**20
        self.row_group_rows = row_group_rows
        self.columns = split_columns(tuple(benchmarks))
        self.schema = SCHEMA
        for col in self.columns.values():
            if col != "split":
                self.schema = self.schema.append(pa.field(col, pa.string()))
        self._rows: list[Sample] = []
        self._bytes = 0

    def add(self, s: Sample) -> None:
        m = self.manifest
        j = s.joints
        if j.ndim != 4 or j.shape[2] != m.layout.num_joints or j.shape[3] != m.layout.num_channels:
            raise ValueError(
                f"{s.sample_id}: joints shape {j.shape} does not match (M, T, "
                f"{m.layout.num_joints}, {m.layout.num_channels}) of layout {m.layout.name}"
            )
        if not 0 <= s.label < len(m.classes):
            raise ValueError(f"{s.sample_id}: label {s.label} outside 0..{len(m.classes) - 1}")
        problem = float32_problem(j)  # the importers reject these; this is the last guard
        if problem:
            raise ValueError(f"{s.sample_id}: joints {problem}")
        missing = [b for b, c in self.columns.items() if c != "split" and b not in s.benchmarks]
        if missing:
            raise ValueError(f"{s.sample_id}: no split for benchmark(s) {missing}")
        self._rows.append(s)
        self._bytes += j.nbytes
        if self._bytes >= self.shard_bytes:
            self.flush()

    def reject(self, sample_id: str, reason: str) -> None:
        self.manifest.rejected.append({"sample_id": sample_id, "reason": reason})

    def flush(self, name: str | None = None) -> str | None:
        """Write the buffered samples as one shard (`name`, or the next part number); the
        shard's file name, or None when nothing was buffered."""
        if not self._rows:
            return None
        rows = self._rows
        columns = {
            "sample_id": [r.sample_id for r in rows],
            "label": [r.label for r in rows],
            "split": [r.split for r in rows],
            "subject": [r.subject for r in rows],
            "bodies": [r.joints.shape[0] for r in rows],
            "frames": [r.joints.shape[1] for r in rows],
            "joints": [r.joints.shape[2] for r in rows],
            "channels": [r.joints.shape[3] for r in rows],
            "data": pa.array(
                [np.ascontiguousarray(r.joints, dtype=np.float32).ravel() for r in rows],
                type=pa.list_(pa.float32()),
            ),
        }
        for b, col in self.columns.items():
            if col != "split":
                columns[col] = [r.benchmarks[b] for r in rows]
        table = pa.table(columns, schema=self.schema)
        name = name or f"part-{len(self.manifest.shards):05d}.parquet"
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf, row_group_size=self.row_group_rows, compression="zstd")
        files.write_whole(files.join(self.out, name), buf.getvalue().to_pybytes())
        self.adopt(name)
        self._rows, self._bytes = [], 0
        return name

    def adopt(self, name: str) -> None:
        """Count a shard already on disk (written by this writer or by an earlier, killed run
        of the same import) as part of the dataset."""
        if name not in self.manifest.shards:
            self.manifest.shards.append(name)

    def close(self, extra: dict | None = None) -> Manifest:
        self.flush()
        m = self.manifest
        k = len(m.classes)
        tallies: dict[str, dict[str, Counter]] = {b: {} for b in self.columns} or {"": {}}
        cols = list(self.columns.values()) or ["split"]
        for shard in m.shards:
            t = read_shard(self.out, shard, columns=["label", "bodies", *cols]).to_pydict()
            m.max_bodies = max([m.max_bodies, *t["bodies"]])
            for b, col in (self.columns or {"": "split"}).items():
                for label, split in zip(t["label"], t[col]):
                    tallies[b].setdefault(split, Counter())[label] += 1

        def counts(per_split: dict[str, Counter]) -> dict:
            return {
                split: {"samples": sum(c.values()), "per_class": [c.get(i, 0) for i in range(k)]}
                for split, c in sorted(per_split.items())
            }

        m.counts = counts(next(iter(tallies.values())))
        if self.columns:
            m.benchmarks = {
                b: {"column": col, "counts": counts(tallies[b])} for b, col in self.columns.items()
            }
        if extra:
            m.extra = extra
        files.write_whole(files.join(self.out, MANIFEST), json.dumps(m.to_json(), indent=1))
        return m


def read_shard(root: str | Path, shard: str, **kwargs) -> pa.Table:
    """One shard of the dataset at `root` (a folder or a URI); kwargs go to pq.read_table."""
    fs, inner = files.filesystem(files.join(root, shard))
    return pq.read_table(inner, filesystem=fs, **kwargs)


def read_manifest(path: str | Path) -> Manifest:
    try:
        d = json.loads(files.read_bytes(files.join(path, MANIFEST)))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is not a prepared dataset (no {MANIFEST}); "
            f"make one with `python -m mcc prepare ...`"
        ) from None
    return Manifest(
        name=d["name"],
        layout=layout_from_dict(d["layout"]),
        classes=d["classes"],
        source=d.get("source", ""),
        counts=d.get("counts", {}),
        rejected=d.get("rejected", []),
        shards=d.get("shards", []),
        max_bodies=d.get("max_bodies", 1),
        extra=d.get("extra", {}),
        benchmarks=d.get("benchmarks", {}),
    )


def load_samples(path: str | Path, split: str | None = None, benchmark: str = "") -> list[Sample]:
    """All samples of a prepared dataset (optionally of one split), in shard order. Each
    sample's `split` is its split in `benchmark` ("" = the dataset's default benchmark)."""
    manifest = read_manifest(path)
    col = manifest.split_column(benchmark)
    out: list[Sample] = []
    for shard in manifest.shards:
        filt = [(col, "=", split)] if split is not None else None
        table = read_shard(path, shard, filters=filt)
        if col != "split":
            table = table.set_column(table.schema.get_field_index("split"), "split", table[col])
        out += samples_from_table(table)
    return out


def read_columns(path: str | Path, columns: list[str]) -> dict[str, list]:
    """Some columns of every shard, concatenated (never the joints unless asked): cheap
    metadata reads for inspection and split bookkeeping."""
    out: dict[str, list] = {c: [] for c in columns}
    for shard in read_manifest(path).shards:
        t = read_shard(path, shard, columns=columns).to_pydict()
        for c in columns:
            out[c] += t[c]
    return out


def samples_from_table(table: pa.Table) -> list[Sample]:
    if table.num_rows == 0:
        return []
    data = table.column("data").combine_chunks()
    flat = data.values.to_numpy(zero_copy_only=False)
    offsets = data.offsets.to_numpy()
    meta = table.drop(["data"]).to_pydict()
    others = [c for c in meta if c.startswith("split_")]
    out = []
    for i in range(table.num_rows):
        shape = (meta["bodies"][i], meta["frames"][i], meta["joints"][i], meta["channels"][i])
        joints = flat[offsets[i] : offsets[i + 1]].reshape(shape)
        out.append(
            Sample(
                sample_id=meta["sample_id"][i],
                label=int(meta["label"][i]),
                split=meta["split"][i],
                joints=joints,
                subject=int(meta["subject"][i]),
                benchmarks={c[len("split_") :]: meta[c][i] for c in others},
            )
        )
    return out
