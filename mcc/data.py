"""Loading a prepared dataset's splits for training and evaluation (no Ray).

The validation split is carved from the training split, seeded and per class, so that model
selection never sees the test split (docs/design.md, "Downstream").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcc.config import ConfigError, DataConfig
from mcc.sampling import normalize
from mcc.shards import Manifest, Sample, load_samples, read_manifest, read_shard


@dataclass
class Splits:
    manifest: Manifest
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]


def per_class_indices(labels, fraction: float, seed: int, what: str = "fraction") -> list[int]:
    """Per class, round(fraction * class count) positions (at least 1), seeded; sorted."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"{what}={fraction} must be in (0, 1]")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = max(1, int(round(fraction * len(idx))))
        keep += rng.choice(idx, size=n, replace=False).tolist()
    return sorted(keep)


def per_class_subset(
    samples: list[Sample], fraction: float, seed: int, what: str = "fraction"
) -> list[Sample]:
    """Per class, round(fraction * class count) samples (at least 1), seeded; in input order."""
    return [samples[i] for i in per_class_indices([s.label for s in samples], fraction, seed, what)]


def carve(cfg: DataConfig) -> tuple[list[str], np.ndarray]:
    """The 'train' split's sample ids in shard order and which of them the validation carve
    takes (`data.val_fraction`, a seeded per-class draw; a bool array), read from the metadata
    columns only: the one rule for the pretraining split, shared with Ray Data (tune/data.py)."""
    manifest = read_manifest(cfg.path)
    ids: list[str] = []
    labels: list[int] = []
    try:
        col = manifest.split_column(cfg.benchmark)
    except ValueError as e:
        raise ConfigError(f"data.benchmark: {e}") from None
    for shard in manifest.shards:
        t = read_shard(cfg.path, shard, columns=["sample_id", "label"],
                       filters=[(col, "=", "train")])  # fmt: skip
        ids += t.column("sample_id").to_pylist()
        labels += t.column("label").to_pylist()
    if not ids:
        bench = f" in benchmark {cfg.benchmark!r}" if cfg.benchmark else ""
        raise ConfigError(f"dataset {cfg.path} has no 'train' split{bench}")
    carved = np.zeros(len(ids), dtype=bool)
    if cfg.val_fraction > 0:
        val = per_class_indices(labels, cfg.val_fraction, cfg.val_seed, "data.val_fraction")
        carved[val] = True
    return ids, carved


def train_ids(cfg: DataConfig) -> list[str]:
    """Sample ids of the pretraining split (train minus the validation carve), in the order
    `load_splits(cfg).train` has them: the index of an id in this list is the sample's index
    everywhere in single-process training (batch plan, queue ids)."""
    ids, carved = carve(cfg)
    return [s for s, c in zip(ids, carved) if not c]


def load_splits(cfg: DataConfig) -> Splits:
    manifest = read_manifest(cfg.path)
    pretrain_ids = set(train_ids(cfg))  # the one rule for the split, shared with Ray Data
    samples = load_samples(cfg.path, benchmark=cfg.benchmark)
    for s in samples:
        s.joints = normalize(s.joints, manifest.layout, cfg.normalize)
    train = [s for s in samples if s.split == "train" and s.sample_id in pretrain_ids]
    val = [s for s in samples if s.split == "train" and s.sample_id not in pretrain_ids]
    test = [s for s in samples if s.split == "test"]
    return Splits(manifest, train, val, test)
