"""Prepared datasets (Parquet shards + dataset.json), the .npz importer and the data CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mcc.datasets.npz import DataImportError, import_npz
from mcc.layouts import NTU25, OPENPOSE18, get_layout
from mcc.shards import MANIFEST, Sample, ShardWriter, load_samples, read_manifest

REPO = Path(__file__).resolve().parents[1]
from conftest import NATOPS_LAYOUT, NATOPS_NPZ, real_data  # noqa: E402

NATOPS = NATOPS_NPZ
COLUMNS = [
    "sample_id",
    "label",
    "split",
    "subject",
    "bodies",
    "frames",
    "joints",
    "channels",
    "data",
]


def make_samples(seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    specs = [  # (bodies, frames, label, split, subject)
        (1, 40, 0, "train", 1),
        (2, 17, 2, "train", 2),
        (1, 3, 2, "test", -1),
        (2, 100, 1, "train", 1),
        (1, 1, 0, "test", 5),
        (2, 64, 2, "test", 3),
    ]
    return [
        Sample(
            f"s{i:03d}",
            label,
            split,
            rng.normal(size=(m, t, 25, 3)).astype(np.float32),
            subject,
        )
        for i, (m, t, label, split, subject) in enumerate(specs)
    ]


def write_samples(out: Path, samples: list[Sample], **kw):
    w = ShardWriter(out, "toy", NTU25, ["a", "b", "c"], source="unit test", **kw)
    for s in samples:
        w.add(s)
    return w.close()


def test_round_trip(tmp_path):
    samples = make_samples()
    m = write_samples(tmp_path / "ds", samples)
    assert m.counts == {
        "test": {"samples": 3, "per_class": [1, 0, 2]},
        "train": {"samples": 3, "per_class": [1, 1, 1]},
    }
    assert m.max_bodies == 2
    assert len(m.shards) == 1
    back = load_samples(tmp_path / "ds")
    assert [b.sample_id for b in back] == [s.sample_id for s in samples]
    for s, b in zip(samples, back, strict=True):
        assert b.joints.dtype == np.float32
        assert b.joints.shape == s.joints.shape
        assert np.array_equal(b.joints, s.joints)
        assert (b.label, b.split, b.subject) == (s.label, s.split, s.subject)
        assert b.num_frames == s.joints.shape[1]


def test_load_one_split(tmp_path):
    samples = make_samples()
    write_samples(tmp_path / "ds", samples, shard_mb=0.02)
    test = load_samples(tmp_path / "ds", split="test")
    assert [s.sample_id for s in test] == ["s002", "s004", "s005"]
    for s in test:
        orig = next(o for o in samples if o.sample_id == s.sample_id)
        assert np.array_equal(s.joints, orig.joints)
    assert load_samples(tmp_path / "ds", split="val") == []


def test_manifest_file(tmp_path):
    out = tmp_path / "ds"
    m = write_samples(out, make_samples())
    assert (out / MANIFEST).is_file()
    d = json.loads((out / MANIFEST).read_text())
    assert d["name"] == "toy" and d["num_classes"] == 3 and d["classes"] == ["a", "b", "c"]
    assert d["layout"]["name"] == "ntu25" and d["layout"]["num_joints"] == 25
    assert d["source"] == "unit test"
    assert d["counts"]["train"]["samples"] == 3
    assert d["rejected"] == []
    assert d["shards"] == m.shards
    for shard in m.shards:
        assert (out / shard).is_file()
    assert not list(out.glob("*.tmp"))
    r = read_manifest(out)
    assert r.layout == NTU25 and r.counts == m.counts and r.shards == m.shards


def test_several_shards(tmp_path):
    out = tmp_path / "ds"
    samples = make_samples()
    m = write_samples(out, samples, shard_mb=0.02)  # ~21 KB: a few samples per shard
    assert len(m.shards) >= 3
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(m.shards)
    assert not list(out.glob("*.tmp"))
    back = load_samples(out)
    assert [b.sample_id for b in back] == [s.sample_id for s in samples]
    assert all(np.array_equal(b.joints, s.joints) for s, b in zip(samples, back, strict=True))
    total = sum(pq.read_metadata(out / s).num_rows for s in m.shards)
    assert total == len(samples)


def test_parquet_readable_by_pyarrow_and_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "ds"
    samples = make_samples()
    m = write_samples(out, samples)
    table = pq.read_table(out / m.shards[0])
    assert table.column_names == COLUMNS
    data_type = table.schema.field("data").type
    assert pa.types.is_list(data_type) and data_type.value_type == pa.float32()
    assert table.schema.field("label").type == pa.int32()
    assert table.schema.field("sample_id").type == pa.string()
    df = pd.read_parquet(out / m.shards[0])
    assert list(df.columns) == COLUMNS
    assert df["frames"].tolist() == [s.joints.shape[1] for s in samples]
    assert df["bodies"].tolist() == [s.joints.shape[0] for s in samples]
    assert set(df["joints"]) == {25} and set(df["channels"]) == {3}
    row = df.iloc[1]
    flat = np.asarray(row["data"], dtype=np.float32)
    assert flat.size == row["bodies"] * row["frames"] * 25 * 3
    assert np.array_equal(flat.reshape(samples[1].joints.shape), samples[1].joints)


def test_add_rejects_wrong_shapes_and_labels(tmp_path):
    w = ShardWriter(tmp_path / "ds", "toy", NTU25, ["a", "b"], source="x")
    with pytest.raises(ValueError, match="25"):
        w.add(Sample("bad", 0, "train", np.zeros((1, 10, 24, 3), dtype=np.float32)))
    with pytest.raises(ValueError):
        w.add(Sample("bad", 0, "train", np.zeros((1, 10, 25, 2), dtype=np.float32)))
    with pytest.raises(ValueError):
        w.add(Sample("bad", 0, "train", np.zeros((10, 25, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="label"):
        w.add(Sample("bad", 2, "train", np.ones((1, 10, 25, 3), dtype=np.float32)))
    w2 = ShardWriter(tmp_path / "op", "toy", OPENPOSE18, ["a"], source="x")
    w2.add(Sample("ok", 0, "train", np.ones((1, 4, 18, 3), dtype=np.float32)))
    assert w2.close().counts == {"train": {"samples": 1, "per_class": [1]}}


def test_read_manifest_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare"):
        read_manifest(tmp_path)


# --- npz import -------------------------------------------------------------------------------


def test_import_natops(tmp_path):
    """The NATOPS sample (the real one, or the stand-in of tests/raw_formats.py)."""
    raw = np.load(NATOPS)
    m = import_npz(NATOPS, str(NATOPS_LAYOUT), tmp_path / "natops")
    assert m.name == "natops"
    assert m.layout == get_layout(NATOPS_LAYOUT)
    assert len(m.classes) == len(set(raw["labels"].tolist())) == 6
    n_train = int((raw["split"] == "train").sum())
    assert m.counts["train"]["samples"] == n_train == sum(m.counts["train"]["per_class"])
    assert m.counts["test"]["samples"] == len(raw["labels"]) - n_train > 0
    assert m.rejected == []
    samples = load_samples(tmp_path / "natops")
    assert len(samples) == len(raw["labels"])
    assert {s.joints.shape for s in samples} == {(1, 51, 8, 3)}
    assert samples[0].sample_id == str(raw["sample_ids"][0])
    assert np.array_equal(samples[0].joints, raw["joints"][0].astype(np.float32))
    assert [s.label for s in samples] == raw["labels"].tolist()


@real_data
def test_real_natops_counts():
    raw = np.load(NATOPS)
    assert len(raw["labels"]) == 360 and int((raw["split"] == "train").sum()) == 180


def make_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_import_rejects_bad_samples(tmp_path):
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(6, 2, 20, 8, 3)).astype(np.float32)
    joints[:, 1] = 0.0  # second body absent everywhere except sample 4
    joints[4, 1] = 1.0
    joints[1, 0, 5, 3, 1] = np.nan  # NaN sample
    joints[2] = 0.0  # all-zero sample
    labels = np.array([0, 1, 1, 5, 1, 0])  # sample 3: label out of range
    lengths = np.array([20, 20, 20, 20, 12, 7])
    split = np.array(["train", "train", "test", "test", "test", "train"])
    ids = np.array([f"id{i}" for i in range(6)])
    src = make_npz(
        tmp_path / "hand.npz",
        joints=joints,
        labels=labels,
        lengths=lengths,
        split=split,
        sample_ids=ids,
        class_names=np.array(["wave", "clap"]),
        subjects=np.arange(6),
    )
    m = import_npz(src, str(NATOPS_LAYOUT), tmp_path / "out")
    rejected = {r["sample_id"]: r["reason"] for r in m.rejected}
    assert set(rejected) == {"id1", "id2", "id3"}
    assert "NaN" in rejected["id1"]
    assert "zero" in rejected["id2"]
    assert "label 5" in rejected["id3"]
    assert m.classes == ["wave", "clap"]
    assert m.counts == {
        "test": {"samples": 1, "per_class": [0, 1]},
        "train": {"samples": 2, "per_class": [2, 0]},
    }
    d = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert len(d["rejected"]) == 3
    got = {s.sample_id: s for s in load_samples(tmp_path / "out")}
    assert set(got) == {"id0", "id4", "id5"}
    assert got["id0"].joints.shape == (1, 20, 8, 3)  # absent body dropped
    assert np.array_equal(got["id0"].joints, joints[0, :1])
    assert got["id4"].joints.shape == (2, 12, 8, 3)  # true length kept, both bodies
    assert np.array_equal(got["id4"].joints, joints[4, :, :12])
    assert got["id5"].joints.shape == (1, 7, 8, 3)
    assert got["id4"].subject == 4 and got["id4"].split == "test"


def test_import_four_dim_joints_and_defaults(tmp_path):
    rng = np.random.default_rng(1)
    src = make_npz(
        tmp_path / "plain.npz",
        joints=rng.normal(size=(3, 10, 8, 3)).astype(np.float32),
        labels=np.array([0, 2, 1]),
    )
    m = import_npz(src, str(NATOPS_LAYOUT), tmp_path / "out")
    assert m.classes == ["class0", "class1", "class2"]
    assert m.counts == {"train": {"samples": 3, "per_class": [1, 1, 1]}}
    s = load_samples(tmp_path / "out")
    assert [x.sample_id for x in s] == ["plain_000000", "plain_000001", "plain_000002"]
    assert s[0].joints.shape == (1, 10, 8, 3) and s[0].subject == -1


def test_import_negative_label_rejected(tmp_path):
    joints = np.ones((2, 1, 5, 8, 3), dtype=np.float32)
    src = make_npz(tmp_path / "neg.npz", joints=joints, labels=np.array([-1, 0]))
    m = import_npz(src, str(NATOPS_LAYOUT), tmp_path / "out")
    assert [r["sample_id"] for r in m.rejected] == ["neg_000000"]
    assert m.counts["train"]["samples"] == 1


def test_import_missing_labels(tmp_path):
    src = make_npz(tmp_path / "nolabels.npz", joints=np.ones((2, 5, 8, 3), dtype=np.float32))
    with pytest.raises(DataImportError, match="labels"):
        import_npz(src, str(NATOPS_LAYOUT), tmp_path / "out")
    assert issubclass(DataImportError, ValueError)


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"joints": np.ones((2, 5, 7, 3)), "labels": np.zeros(2, int)}, ["7 joints"]),
        ({"joints": np.ones((2, 5, 8, 3)), "labels": np.zeros(3, int)}, ["labels shape"]),
        ({"joints": np.ones((5, 8, 3)), "labels": np.zeros(5, int)}, ["joints must be"]),
        (
            {"joints": np.ones((2, 5, 8, 3)), "labels": np.zeros(2, int), "split": np.array(["t"])},
            ["split"],
        ),
    ],
)
def test_import_bad_arrays(tmp_path, arrays, words):
    src = make_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataImportError) as e:
        import_npz(src, str(NATOPS_LAYOUT), tmp_path / "out")
    for w in words:
        assert w in str(e.value)


def test_import_unreadable_file(tmp_path):
    src = tmp_path / "junk.npz"
    src.write_bytes(b"not a zip file")
    with pytest.raises(DataImportError, match="readable"):
        import_npz(src, str(NATOPS_LAYOUT), tmp_path / "out")


# --- CLI --------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "mcc", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_prepare_and_inspect(tmp_path, capsys):
    out = tmp_path / "natops"
    p = run_cli(
        "prepare", "npz", "--src", str(NATOPS), "--layout", str(NATOPS_LAYOUT), "--out", str(out)
    )
    assert p.returncode == 0, p.stderr
    raw = np.load(NATOPS)
    train = raw["split"] == "train"
    n_train, n_test = int(train.sum()), int((~train).sum())
    per_class = np.bincount(raw["labels"][train])
    assert "6 classes" in p.stdout and f"test {n_test}" in p.stdout
    assert f"train {n_train}" in p.stdout
    assert "0 rejected" in p.stdout
    assert (out / MANIFEST).is_file()
    # `python -m mcc inspect DIR` is main(["inspect", DIR]); in-process to spare a torch import
    from mcc.cli import main

    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "natops8 (8 joints" in text
    lo, hi = per_class.min(), per_class.max()
    assert f"train: {n_train} samples, per class min {lo} max {hi}" in text
    assert f"test: {n_test} samples" in text
    assert "frames: min 51 median 51 max 51" in text
    assert "r=8: 100.0% wrap; cap: mean speed 1.00" in text
    assert "r=1:   0.0% wrap" in text


def test_cli_pretrain_unknown_key(tmp_path):
    out = tmp_path / "run"
    p = run_cli("pretrain", "--set", "loss.bogus=1", "--out", str(out), "--no-progress")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "loss.bogus" in lines[0] and "loss.tau" in lines[0]
    assert not out.exists()


def test_cli_prepare_npz_needs_src(tmp_path, capsys):
    from mcc.cli import main

    assert main(["prepare", "npz", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--src" in err


def test_cli_inspect_lists_rejects(tmp_path, capsys):
    from mcc.cli import main

    joints = np.ones((3, 1, 40, 8, 3), dtype=np.float32)
    joints[1] = np.nan
    src = make_npz(tmp_path / "r.npz", joints=joints, labels=np.array([0, 1, 1]))
    import_npz(src, str(NATOPS_LAYOUT), tmp_path / "out")
    assert main(["inspect", str(tmp_path / "out"), "--speeds", "1", "2"]) == 0
    text = capsys.readouterr().out
    assert "rejected: 1" in text and "r_000001: non-finite" in text
    assert "r=2: 100.0% wrap; cap: mean speed 1.00" in text
    assert "r=4" not in text
