"""Ray Data: a prepared dataset's Parquet shards streamed through MCC's sampling.

Three ways to feed the Train workers (`--sampling`, decided by tune/cluster.py
`plan_resources`):

ray-data (the default when a CPU is left after the workers): one lazy dataset, built by the
driver (`stream_train`) and handed to the trainer (`datasets={"train": ...}`), which splits
it over the workers (`streaming_split(equal=True)`, DataConfig's default):

    read_parquet(shards, filter: split == "train", file order shuffled per epoch)
        ->  map_batches(_keyed_rows: drop the validation carve, add the int64 `key`)

Each worker iterates its shard once per epoch (`stream_epoch`): `iter_batches(drop_last=True)`
with a local shuffle buffer seeded by (seed, epoch, rank), each row decoded, normalised and
turned into views by `mcc.train.view_arrays` seeded by its key. Nothing is materialized, so a
dataset larger than the object store streams through it; equal splits and drop_last give
every worker the same step count (DDP needs it).

worker (no CPU left for Ray Data tasks, e.g. 2 workers x 1 CPU on 2 CPUs): each worker reads
the shards itself with pyarrow (`worker_epoch`), in record batches with the split filter
pushed down, keeps the rows its epoch plan over the keys gives it and shuffles them in a
bounded buffer: no copy of the dataset in any process.

exact (opt-in, small data only): `read_train` materializes the pretraining split with its
sample index and `epoch_batches` sorts it per worker and epoch into exactly the batches of
`python -m mcc pretrain` with the same seed (`mcc.train.epoch_plan`): a full scan and an
all-to-all sort per worker and epoch.

The sample key (`sample_key`) is a stable 63-bit hash of the sample id: the queue id and the
seed of the sample's views, the same whichever worker draws it.

In the exact mode a worker started by a Tune trial inherits the trial's "capture child tasks"
flag, so a task it submits with no scheduling strategy lands in the worker's own one-CPU
placement group. Ray Data 2.60's sort submits its shuffle map tasks that way when it cannot
tell where their input blocks live; they then fail ("cannot fit into any bundles") or would
wait forever. So those epochs run in a small helper actor placed outside any placement group,
which hands the batches over (`iter_numpy_batches`).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from mcc import files
from mcc.config import ConfigError, DataConfig, PretrainConfig
from mcc.data import carve, train_ids
from mcc.layouts import Layout
from mcc.sampling import normalize
from mcc.shards import read_manifest
from mcc.train import batch_tensors, epoch_plan, view_arrays

SHAPE = ["bodies", "frames", "joints", "channels"]


# rows in each worker's local shuffle buffer, in batches: bounds a worker's memory
SHUFFLE_BATCHES = 4
# batches each worker's Ray Data iterator prepares ahead of the one training
PREFETCH_BATCHES = 2
# rows per pyarrow record batch read by a worker in the fallback (sampling=worker)
READ_ROWS = 256
KEY_MASK = (1 << 63) - 1


def shard_files(path: str) -> list[str]:
    """The dataset's shard paths as `read_shard` resolves them (a folder or a URI)."""
    return [files.join(path, s) for s in read_manifest(path).shards]


def sample_key(sample_id: str) -> int:
    """A stable 63-bit int of a sample id (blake2b, first 8 bytes): the sample's queue id and
    the seed of its views, the same in every process and run."""
    digest = hashlib.blake2b(sample_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & KEY_MASK


def sample_keys(ids) -> np.ndarray:
    return np.fromiter((sample_key(str(s)) for s in ids), dtype=np.int64, count=len(ids))


@dataclass(frozen=True)
class TrainKeys:
    """The keys of the training split's two parts, each sorted: `train` the pretraining rows,
    `carved` the validation carve (`data.val_fraction`, the rule of mcc.data.train_ids)."""

    train: np.ndarray
    carved: np.ndarray


def split_keys(cfg: DataConfig) -> TrainKeys:
    """Read the metadata columns (sample_id, label) of the 'train' split, never the joints,
    and carve the validation part with mcc.data's seeded per-class draw."""
    ids, carved = carve(cfg)
    keys = sample_keys(ids)
    if len(np.unique(keys)) != len(keys):
        raise ConfigError(f"dataset {cfg.path}: two training samples share a sample_id hash")
    return TrainKeys(np.sort(keys[~carved]), np.sort(keys[carved]))


def split_column(manifest, benchmark: str) -> str:
    try:
        return manifest.split_column(benchmark)
    except ValueError as e:
        raise ConfigError(f"data.benchmark: {e}") from None


def is_in(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Which of `keys` are in the sorted array `sorted_keys` (a binary search each)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


def _keyed_rows(table: pa.Table, carved: np.ndarray) -> pa.Table:
    """map_batches function: drop the validation carve, replace sample_id by its key."""
    keys = sample_keys(table.column("sample_id").to_pylist())
    keep = ~is_in(keys, carved)
    out = table.drop(["sample_id"]).filter(pa.array(keep))
    return out.append_column("key", pa.array(keys[keep]))


def train_filter(cfg: DataConfig) -> pc.Expression:
    """The pushed-down row filter of the training split (its column in `data.benchmark`)."""
    return pc.field(split_column(read_manifest(cfg.path), cfg.benchmark)) == "train"


def stream_train(cfg: PretrainConfig, carved: np.ndarray) -> ray.data.Dataset:
    """The pretraining split as a lazy dataset of (key, shape columns, data): the split
    filter and the column selection are pushed down into the Parquet read by Ray Data's
    optimizer, the shard order is shuffled anew each execution (each epoch) from the seed,
    the carve is dropped by key. Nothing is materialized."""
    from ray.data.expressions import col

    quiet_executions()
    fs, _ = files.filesystem(cfg.data.path)
    paths = [files.filesystem(p)[1] for p in shard_files(cfg.data.path)]
    split = split_column(read_manifest(cfg.data.path), cfg.data.benchmark)
    ds = ray.data.read_parquet(
        paths,
        filesystem=fs,
        shuffle=ray.data.FileShuffleConfig(seed=cfg.seed, reseed_after_execution=True),
    )
    ds = ds.filter(expr=col(split) == "train").select_columns(["sample_id", *SHAPE, "data"])
    return ds.map_batches(_keyed_rows, fn_kwargs={"carved": carved}, batch_format="pyarrow")


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The local shuffle seed of one worker's epoch: reproducible, different per epoch/rank."""
    return int(np.random.default_rng([seed, epoch, rank]).integers(2**31))


def shuffle_rows(cfg: PretrainConfig) -> int:
    return SHUFFLE_BATCHES * cfg.optim.batch_size


def row_views(batch: dict, ids: np.ndarray, cfg: PretrainConfig, layout: Layout, bodies: int,
              epoch: int) -> dict[str, np.ndarray]:  # fmt: skip
    """Rows (shape columns + flat data) -> the stacked views of `mcc.train.view_arrays`, each
    sample seeded by its id in `ids` (the sample index or the key)."""
    views = []
    for i in range(len(ids)):
        seq = normalize(_decode([batch[k][i] for k in SHAPE], batch["data"][i]), layout,
                        cfg.data.normalize)  # fmt: skip
        views.append(view_arrays(seq, int(ids[i]), cfg, epoch, bodies, layout.coord_channels))
    return {k: np.stack([v[k] for v in views]) for k in views[0]}


def stream_epoch(shard, cfg: PretrainConfig, layout: Layout, bodies: int, epoch: int,
                 rank: int) -> Iterator[dict[str, torch.Tensor]]:  # fmt: skip
    """One epoch of this worker's batches from its Ray Data shard
    (`ray.train.get_dataset_shard`): full batches only, shuffled in a seeded local buffer."""
    for b in shard.iter_batches(
        batch_size=cfg.optim.batch_size,
        batch_format="numpy",
        drop_last=True,
        prefetch_batches=PREFETCH_BATCHES,
        local_shuffle_buffer_size=shuffle_rows(cfg),
        local_shuffle_seed=epoch_seed(cfg.seed, epoch, rank),
    ):
        yield batch_tensors(row_views(b, b["key"], cfg, layout, bodies, epoch), b["key"])


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
        out = row_views(batch, batch["index"], self.cfg, self.layout, self.bodies, self.epoch)
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


def worker_epoch(
    cfg: PretrainConfig, keys: np.ndarray, layout: Layout, bodies: int, epoch: int, rank: int,
    world: int,
) -> Iterator[dict[str, torch.Tensor]]:  # fmt: skip
    """One epoch of worker `rank`'s batches without Ray Data (sampling=worker): the epoch plan
    over the sorted pretraining keys (`mcc.train.epoch_plan`, equal steps on every worker)
    says which rows are this worker's; the worker streams the shards with pyarrow (split
    filter pushed down, READ_ROWS rows at a time, shard order seeded per epoch), keeps its
    rows and draws batches from a seeded buffer of `shuffle_rows` rows. Memory: one record
    batch plus the buffer."""
    plan = epoch_plan(len(keys), cfg, epoch, world)[rank]
    mine = np.sort(keys[plan])
    steps = len(plan) // cfg.optim.batch_size
    rng = np.random.default_rng([cfg.seed, epoch, rank])
    paths = shard_files(cfg.data.path)
    rows = ([], [], [])  # keys, shapes, flat data: the shuffle buffer
    batches = 0
    for row in _stream_rows([paths[i] for i in rng.permutation(len(paths))], cfg.data, mine):
        for part, x in zip(rows, row):
            part.append(x)
        if len(rows[0]) >= shuffle_rows(cfg):
            yield _draw_batch(rows, rng, cfg, layout, bodies, epoch)
            batches += 1
            if batches == steps:
                return
    while batches < steps and len(rows[0]) >= cfg.optim.batch_size:
        yield _draw_batch(rows, rng, cfg, layout, bodies, epoch)
        batches += 1
    if batches < steps:
        raise RuntimeError(f"worker {rank} found {batches} of its {steps} batches' rows")


def _stream_rows(paths: list[str], cfg: DataConfig, mine: np.ndarray) -> Iterator[tuple]:
    """(key, shape, flat data) of the training rows whose key is in `mine`, shard by shard."""
    fs, _ = files.filesystem(cfg.path)
    inner = [files.filesystem(p)[1] for p in paths]
    data = pads.dataset(inner, filesystem=fs, format="parquet")
    scan = data.to_batches(
        columns=["sample_id", *SHAPE, "data"],
        filter=train_filter(cfg),
        batch_size=READ_ROWS,
        batch_readahead=1,
        fragment_readahead=1,
    )
    for rb in scan:
        keys = sample_keys(rb.column("sample_id").to_pylist())
        cols = {k: rb.column(k).to_numpy() for k in SHAPE}
        flat = rb.column("data")
        for i in np.flatnonzero(is_in(keys, mine)):
            shape = tuple(int(cols[k][i]) for k in SHAPE)
            yield keys[i], shape, flat[i].values.to_numpy(zero_copy_only=False)


def _draw_batch(rows: tuple, rng, cfg: PretrainConfig, layout: Layout, bodies: int,
                epoch: int) -> dict[str, torch.Tensor]:  # fmt: skip
    """Take one batch of rows at random out of the buffer `rows` (swap-remove)."""
    keys, shapes, flats = rows
    picked = []
    for _ in range(cfg.optim.batch_size):
        j = int(rng.integers(len(keys)))
        for part in rows:
            part[j], part[-1] = part[-1], part[j]
        picked.append((keys.pop(), shapes.pop(), flats.pop()))
    ids = np.array([p[0] for p in picked], dtype=np.int64)
    batch = {k: [p[1][i] for p in picked] for i, k in enumerate(SHAPE)}
    batch["data"] = [p[2] for p in picked]
    return batch_tensors(row_views(batch, ids, cfg, layout, bodies, epoch), ids)
