"""The import runner (mcc.datasets.prepare.run): chunks to shards, process pool, rejections,
benchmark columns, and resuming a killed import without redoing finished shards."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from mcc.config import DataConfig
from mcc.data import load_splits, train_ids
from mcc.datasets.prepare import PROGRESS, NothingConverted, Reject, Source, read_rejected, run
from mcc.layouts import NTU25
from mcc.shards import Sample, load_samples, read_manifest

CALLS: list[int] = []  # units read in this process (workers=1 runs in-process)


def read_fake(unit: int) -> list[Sample | Reject]:
    """Unit u: a reject when u % 5 == 3, else one sample (two when u % 4 == 0)."""
    CALLS.append(unit)
    if unit == CRASH_AT[0]:
        raise RuntimeError("killed")  # stands for a SIGKILL of the import, not bad data
    if unit % 5 == 3:
        return [Reject(f"u{unit}", f"unit {unit} is broken")]
    rng = np.random.default_rng(unit)
    out = []
    for j in range(2 if unit % 4 == 0 else 1):
        joints = rng.normal(size=(1 + unit % 2, 10 + unit, 25, 3)).astype(np.float32)
        split = "train" if unit % 3 else "test"
        other = "test" if split == "train" else "train"
        out.append(Sample(f"u{unit}_{j}", unit % 3, split, joints, unit, {"view": other}))
    return out


CRASH_AT = [-1]


def fake_source(n: int = 12, **kw) -> Source:
    return Source(
        name="fake",
        layout=NTU25,
        classes=["a", "b", "c"],
        source="unit test",
        units=list(range(n)),
        read=read_fake,
        benchmarks=("sub", "view"),
        **kw,
    )


def test_shards_rejects_and_counts(tmp_path):
    src = fake_source(rejected=[Reject("gone", "listed as missing")])
    m = run(src, tmp_path / "a",
            workers=1, files_per_shard=5, progress=False)  # fmt: skip
    assert m.shards == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [r["sample_id"] for r in m.rejected] == ["gone", "u3", "u8"]
    samples = load_samples(tmp_path / "a")
    ids = [s.sample_id for s in samples]
    assert ids[:3] == ["u0_0", "u0_1", "u1_0"] and "u3_0" not in ids and len(ids) == 12
    assert m.counts["train"]["samples"] + m.counts["test"]["samples"] == 12
    assert m.benchmarks["view"]["column"] == "split_view"
    assert m.benchmarks["view"]["counts"]["train"] == m.counts["test"]
    assert m.max_bodies == 2
    # the second benchmark is a column of the same shards, and `data.benchmark` picks it
    view = load_samples(tmp_path / "a", benchmark="view")
    assert [s.split for s in view] == [s.benchmarks["view"] for s in samples]
    assert [s.sample_id for s in load_samples(tmp_path / "a", "train", "view")] == [
        s.sample_id for s in samples if s.split == "test"
    ]
    splits = load_splits(DataConfig(path=str(tmp_path / "a"), benchmark="view"))
    view_test = {s.sample_id for s in samples if s.split == "train"}
    assert {s.sample_id for s in splits.test} == view_test
    with pytest.raises(ValueError, match="no benchmark 'xview'.*sub, view"):
        train_ids(DataConfig(path=str(tmp_path / "a"), benchmark="xview"))
    # --strict fails on what reading found, not on the list known beforehand
    assert [r["sample_id"] for r in read_rejected(m, fake_source(
        rejected=[Reject("gone", "listed as missing")]))] == ["u3", "u8"]  # fmt: skip


def test_process_pool_writes_the_same_shards(tmp_path):
    run(fake_source(), tmp_path / "one", workers=1, files_per_shard=4, progress=False)
    run(fake_source(), tmp_path / "two", workers=2, files_per_shard=4, progress=False)
    for shard in read_manifest(tmp_path / "one").shards:
        assert pq.read_table(tmp_path / "one" / shard).equals(
            pq.read_table(tmp_path / "two" / shard)
        )


def test_a_killed_import_resumes_without_redoing_finished_shards(tmp_path):
    out = tmp_path / "ds"
    CRASH_AT[0] = 7
    try:
        with pytest.raises(RuntimeError, match="killed"):
            run(fake_source(), out, workers=1, files_per_shard=3, progress=False)
    finally:
        CRASH_AT[0] = -1
    finished = sorted(p.name for p in out.glob("*.parquet"))
    assert finished == ["part-00000.parquet", "part-00001.parquet"]  # units 0-5
    assert not list(out.glob("*.tmp")) and not (out / "dataset.json").exists()
    mtimes = {p: (out / p).stat().st_mtime_ns for p in finished}
    CALLS.clear()
    m = run(fake_source(), out, workers=1, files_per_shard=3, progress=False)
    assert CALLS == list(range(6, 12))  # only the unfinished chunks are read again
    assert {p: (out / p).stat().st_mtime_ns for p in finished} == mtimes
    fresh = run(fake_source(), tmp_path / "fresh", workers=1, files_per_shard=3, progress=False)
    assert m.counts == fresh.counts and m.rejected == fresh.rejected
    assert m.shards == fresh.shards
    # a finished import run again reads nothing
    CALLS.clear()
    run(fake_source(), out, workers=1, files_per_shard=3, progress=False)
    assert CALLS == []


def test_rerun_into_a_folder_of_another_import_is_refused(tmp_path):
    run(fake_source(), tmp_path / "ds", workers=1, files_per_shard=3, progress=False)
    with pytest.raises(ValueError, match="other input.*files_per_shard, units"):
        run(fake_source(n=9), tmp_path / "ds", workers=1, files_per_shard=4, progress=False)
    assert json.loads((tmp_path / "ds" / PROGRESS / "job.json").read_text())["units"] == 12


def test_nothing_converted(tmp_path):
    src = fake_source(n=2)
    src.units = [3, 8]
    with pytest.raises(NothingConverted, match="no sample of fake.*2 rejected"):
        run(src, tmp_path / "ds", workers=1, progress=False)
    assert len(read_manifest(tmp_path / "ds").rejected) == 2


def test_cli_raw_imports_strict_and_errors(tmp_path, capsys):
    """`python -m mcc prepare ntu60|kinetics|pkummd` on the sample files (the real sample
    data, MCC_SHARED_DATA, or the generated stand-in); a bad file is listed, not fatal, unless
    --strict; an unusable --src is one error line."""
    import shutil

    from conftest import DATA

    from mcc.cli import main
    from mcc.datasets.ntu import NTU60_XSUB_TRAIN

    ntu = tmp_path / "ntu"
    shutil.copytree(DATA / "ntu", ntu)
    performers = [int(p.name[9:12]) for p in ntu.glob("*.skeleton")]
    train = sum(p in NTU60_XSUB_TRAIN for p in performers)
    (ntu / "S001C001P001R001A001.skeleton").write_text("3\n1\n")  # truncated
    missing = DATA / "ntu-meta" / "NTU_RGBD_samples_with_missing_skeletons.txt"
    args = ["prepare", "ntu60", "--src", str(ntu), "--missing", str(missing), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert f"ntu60, 60 classes, test {len(performers) - train}, train {train}, 1 rejected" in out
    assert main([*args, "--out", str(tmp_path / "b"), "--strict"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --strict: 1 sample(s) rejected, e.g. S001C001P001R001A001")
    assert main(["inspect", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert "benchmark xview (column split_xview" in text and "rejected: 1" in text

    clips = [p for p in (DATA / "kinetics").glob("*.json") if not p.name.startswith("kinetics_")]
    kin = ["prepare", "kinetics", "--src", str(DATA / "kinetics"), "--split", "test"]
    assert main([*kin, "--out", str(tmp_path / "k"), "--no-progress"]) == 0
    assert f"400 classes, test {len(clips)}, 0 rejected" in capsys.readouterr().out
    pku = DATA / "pkummd"
    line = (pku / "splits" / "cross-subject.txt").read_text().splitlines()[3]
    test_videos = {v.strip() for v in line.split(",")}
    rows = {"train": 0, "test": 0}  # label rows (one sample each) per x-sub split
    for labels in (pku / "labels").glob("*.txt"):
        split = "test" if labels.stem in test_videos else "train"
        rows[split] += len(labels.read_text().split())
    cmd = ["prepare", "pkummd", "--src", str(pku)]
    assert main([*cmd, "--out", str(tmp_path / "p"), "--no-progress"]) == 0
    assert f"51 classes, test {rows['test']}, train {rows['train']}, 0 rejected" in (
        capsys.readouterr().out
    )

    assert (
        main(["prepare", "ntu120", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "c")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope" in err[0]
    assert main(["prepare", "pkummd", "--out", str(tmp_path / "d")]) == 2
    assert "needs --src" in capsys.readouterr().err
