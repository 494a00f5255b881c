"""Ray Data: a prepared dataset's Parquet shards streamed through MCC's sampling.

Two stages. `read_train` reads the shards once, keeps the pretraining split (train minus the
validation carve, `mcc.data.train_ids`) and numbers each row with its sample index; the result
is materialized in the object store, so later epochs do not re-read Parquet. `epoch_batches`
then runs one epoch for one worker:

    rows of this worker (mcc.train.epoch_plan)  ->  sort by batch position
        ->  map_batches(mcc.train.view_arrays)  ->  batches of anchor/positive/negative/targets

The order and the split come from the same `epoch_plan` as the single-process trainer, and each
sample's views are seeded by (seed, epoch, sample index), so a Ray run sees exactly the batches
of `python -m mcc pretrain` with the same seed. The per-epoch shuffle is the sort: a seeded
permutation, different every epoch, identical on every run.

A Train worker started by a Tune trial inherits the trial's "capture child tasks" flag, so a
task it submits with no scheduling strategy lands in the worker's own one-CPU placement group.
Ray Data 2.60's sort submits its shuffle map tasks that way when it cannot tell where their
input blocks live; they then fail ("cannot fit into any bundles") or would wait forever. So
a worker's epochs run in a small helper actor placed outside any placement group, which
hands the batches over (`iter_numpy_batches`).

`local_samples` serves the fallback when no CPU is left for Ray Data tasks (every CPU taken by
Train workers): the worker pulls the rows from the materialized dataset (no tasks needed) and
samples in-process with `mcc.train.pretrain_batches`, the same functions.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from mcc.config import PretrainConfig
from mcc.data import train_ids
from mcc.layouts import Layout
from mcc.sampling import normalize
from mcc.shards import Sample, read_manifest
from mcc.train import batch_tensors, epoch_plan, view_arrays

SHAPE = ["bodies", "frames", "joints", "channels"]


def shard_files(path: str) -> list[str]:
    from pathlib import Path

    root = Path(path).resolve()
    return [str(root / s) for s in read_manifest(root).shards]


def _number_train_rows(table: pa.Table, index: dict[str, int]) -> pa.Table:
    ids = table.column("sample_id").to_pylist()
    pos = np.array([index.get(s, -1) for s in ids], dtype=np.int64)
    keep = pos >= 0
    out = table.drop(["sample_id"]).filter(pa.array(keep))
    return out.append_column("index", pa.array(pos[keep]))


def quiet_executions() -> None:
    """No "Starting execution of Dataset ... / Execution plan ..." lines on the console (two
    per epoch; they stay in Ray Data's log files): the sweep prints its own (tune/progress.py)."""
    ray.data.DataContext.get_current().print_on_execution_start = False


def read_train(cfg: PretrainConfig) -> tuple[ray.data.Dataset, int]:
    """The pretraining split as a materialized dataset with an `index` column; its size."""
    quiet_executions()
    ids = train_ids(cfg.data)
    index = {s: i for i, s in enumerate(ids)}
    ds = (
        ray.data.read_parquet(shard_files(cfg.data.path))
        .select_columns(["sample_id", *SHAPE, "data"])
        .map_batches(_number_train_rows, fn_kwargs={"index": index}, batch_format="pyarrow")
        .materialize()
    )
    return ds, len(ids)


def _decode(row_shape, flat: np.ndarray) -> np.ndarray:
    return np.asarray(flat, dtype=np.float32).reshape(tuple(int(x) for x in row_shape))


def _select_rows(table: pa.Table, position: np.ndarray) -> pa.Table:
    """Keep this worker's rows of the epoch, with their position in its batch order."""
    pos = position[table.column("index").to_numpy()]
    keep = pos >= 0
    return table.filter(pa.array(keep)).append_column("pos", pa.array(pos[keep]))


class SampleViews:
    """map_batches function: raw rows -> the MCC views of `mcc.train.view_arrays`."""

    def __init__(self, cfg: PretrainConfig, layout: Layout, bodies: int, epoch: int) -> None:
        self.cfg, self.layout, self.bodies, self.epoch = cfg, layout, bodies, epoch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        views = []
        for i in range(len(batch["index"])):
            shape = [batch[k][i] for k in SHAPE]
            seq = normalize(_decode(shape, batch["data"][i]), self.layout, self.cfg.data.normalize)
            views.append(
                view_arrays(
                    seq,
                    int(batch["index"][i]),
                    self.cfg,
                    self.epoch,
                    self.bodies,
                    self.layout.coord_channels,
                )
            )
        out = {k: np.stack([v[k] for v in views]) for k in views[0]}
        out["index"] = np.asarray(batch["index"], dtype=np.int64)
        return out


def _numpy_batches(ds: ray.data.Dataset, batch_size: int) -> Iterator[dict]:
    return ds.iter_batches(
        batch_size=batch_size, batch_format="numpy", drop_last=False, prefetch_batches=2
    )


@ray.remote(num_cpus=0)
class _EpochReader:
    """Executes datasets from outside any placement group (so none of their tasks is captured
    by one) and hands their batches out one call at a time. One per worker process, alive
    for the whole run: no process start per epoch."""

    def __init__(self) -> None:
        self._batches: Iterator | None = None

    def start(self, ds: ray.data.Dataset, batch_size: int) -> None:
        self._batches = iter(_numpy_batches(ds, batch_size))

    def next(self) -> dict | None:
        return next(self._batches, None)


_reader = None


def iter_numpy_batches(ds: ray.data.Dataset, batch_size: int) -> Iterator[dict]:
    """`ds`'s batches, in order, as numpy dicts. In a process that is in a placement group
    (a Train worker) the dataset runs in this process's `_EpochReader` instead (see the module
    docstring), one batch requested ahead of the one being used."""
    global _reader
    if ray.util.get_current_placement_group() is None:
        yield from _numpy_batches(ds, batch_size)
        return
    if _reader is None:  # on this worker's node; it dies with the worker
        node = ray.get_runtime_context().get_node_id()
        strategy = NodeAffinitySchedulingStrategy(node, soft=False)
        _reader = _EpochReader.options(scheduling_strategy=strategy).remote()
    ray.get(_reader.start.remote(ds, batch_size))
    ahead = _reader.next.remote()
    while (batch := ray.get(ahead)) is not None:
        ahead = _reader.next.remote()
        yield batch


def epoch_batches(
    raw: ray.data.Dataset,
    num_samples: int,
    cfg: PretrainConfig,
    layout: Layout,
    bodies: int,
    epoch: int,
    rank: int,
    world_size: int,
    data_cpus: float = 1.0,
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of batches for worker `rank`, sampled by Ray Data tasks."""
    quiet_executions()
    plan = epoch_plan(num_samples, cfg, epoch, world_size)[rank]
    position = np.full(num_samples, -1, dtype=np.int64)
    position[plan] = np.arange(len(plan))
    remote = {"num_cpus": data_cpus}
    ds = (
        raw.map_batches(
            _select_rows,
            fn_kwargs={"position": position},
            batch_format="pyarrow",
            **remote,
        )
        .sort("pos")
        .map_batches(
            SampleViews(cfg, layout, bodies, epoch),
            batch_format="numpy",
            batch_size=cfg.optim.batch_size,
            **remote,
        )
    )
    # The sort is the shuffle: keep its order. Set on this dataset's own context: a dataset
    # carries the context it was created with (here the driver's, pickled to the worker).
    ds.context.execution_options.preserve_order = True
    for b in iter_numpy_batches(ds, cfg.optim.batch_size):
        yield batch_tensors(b, b["index"])


def epochs_ahead(make_epoch, start: int, stop: int, depth: int) -> Iterator[Iterator]:
    """One batch iterator per epoch in [start, stop), produced by a single background thread
    that runs up to `depth` batches ahead of training, across epoch boundaries.

    The next epoch's pipeline (whose sort is a barrier: no batch leaves it before all of the
    worker's rows are in) thus starts while the current epoch's last batches train, on the
    data CPUs, and only one Ray Data execution runs at a time."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    end = object()

    def produce() -> None:
        try:
            for epoch in range(start, stop):
                for b in make_epoch(epoch):
                    q.put(b)
                q.put(end)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    def one_epoch() -> Iterator:
        while True:
            x = q.get()
            if x is end:
                return
            if isinstance(x, BaseException):
                raise x
            yield x

    threading.Thread(target=produce, daemon=True, name="mcc-prefetch").start()
    for _ in range(start, stop):
        yield one_epoch()


def local_samples(raw: ray.data.Dataset, num_samples: int, cfg: PretrainConfig, layout: Layout):
    """All pretraining samples in index order, pulled from the materialized dataset into this
    process and normalised (the fallback path; small datasets only)."""
    out: list[Sample | None] = [None] * num_samples
    for b in raw.iter_batches(batch_format="numpy", batch_size=256):
        for i in range(len(b["index"])):
            seq = _decode([b[k][i] for k in SHAPE], b["data"][i])
            idx = int(b["index"][i])
            out[idx] = Sample(str(idx), -1, "train", normalize(seq, layout, cfg.data.normalize))
    return out
