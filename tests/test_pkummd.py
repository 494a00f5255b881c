"""PKU-MMD importer (mcc.datasets.pkummd) on the sample videos (the 3 real phase-1 videos of
the real sample data, MCC_SHARED_DATA, or the generated stand-in of tests/raw_formats.py) and
on a broken corpus built from them. Tests marked real_data check facts of the real videos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, real_data
from raw_formats import write_pkummd_split

from mcc.datasets import pkummd
from mcc.datasets.prepare import Reject, Source, read_rejected, run
from mcc.layouts import NTU25
from mcc.shards import Sample, load_samples

PKU = DATA / "pkummd"
VIDEOS = tuple(sorted(p.stem for p in (PKU / "skeleton").glob("*.txt")))
REAL_VIDEOS = ("0036-L", "0160-L", "0312-R")


def convert(src: Source) -> tuple[dict[str, Sample], dict[str, str]]:
    """Every unit read in-process: ({sample_id: Sample}, {sample_id: reject reason})."""
    samples, rejects = {}, {}
    for unit in src.units:
        for item in pkummd.read(unit):
            if isinstance(item, Reject):
                rejects[item.sample_id] = item.reason
            else:
                samples[item.sample_id] = item
    return samples, rejects


def label_rows(path: Path) -> list[list[int]]:
    return [[int(x) for x in line.split(",")] for line in path.read_text().splitlines()]


def split_lists(path: Path) -> tuple[set[str], set[str]]:
    lines = path.read_text().splitlines()
    names = [{v.strip() for v in lines[i].split(",") if v.strip()} for i in (1, 3)]
    return names[0], names[1]


def xsub_test_rows() -> list[int]:
    """The labels (1-based) of the label rows of the sample videos on the x-sub test list."""
    _, test = split_lists(PKU / "splits" / "cross-subject.txt")
    return [row[0] for v in VIDEOS if v in test for row in label_rows(PKU / "labels" / f"{v}.txt")]


@pytest.fixture(scope="module")
def real():
    src = pkummd.source(PKU)
    return src, *convert(src)


def test_segments_match_their_label_rows(real):
    src, samples, rejects = real
    assert src.layout == NTU25 and len(src.classes) == 51 and src.benchmarks == ("xsub", "xview")
    assert not rejects
    assert [u.video for u in src.units] == list(VIDEOS)
    total = 0
    for video in VIDEOS:
        skeleton = np.loadtxt(PKU / "skeleton" / f"{video}.txt", dtype=np.float32)
        rows = label_rows(PKU / "labels" / f"{video}.txt")
        total += len(rows)
        for n, (label, start, end, _) in enumerate(rows, start=1):
            s = samples[f"{video}_{n:04d}_A{label:02d}"]
            assert s.label == label - 1 and s.subject == -1
            assert s.joints.dtype == np.float32 and s.num_frames == end - start + 1
            lines = skeleton[start - 1 : end]  # the segment's lines of the txt
            bodies = [lines[:, :75], lines[:, 75:]]
            want = np.stack([b.reshape(-1, 25, 3) for b in bodies if b.any()])
            np.testing.assert_array_equal(s.joints, want)
    assert len(samples) == total


@real_data
def test_real_videos(real):
    src, samples, _ = real
    assert VIDEOS == REAL_VIDEOS and len(samples) == 7 + 16 + 19
    assert src.classes[0] == "bow" and src.classes[50] == "writing"
    assert {sid.split("_")[0]: s.split for sid, s in samples.items()} == {
        "0036-L": "train", "0160-L": "train", "0312-R": "test"
    }  # fmt: skip


@real_data
def test_bodies_per_video(real):
    _, samples, _ = real
    bodies = {v: {s.joints.shape[0] for sid, s in samples.items() if sid.startswith(v)}
              for v in VIDEOS}  # fmt: skip
    assert bodies == {"0036-L": {2}, "0160-L": {1}, "0312-R": {1}}


def test_split_membership_from_the_split_files(real):
    _, samples, _ = real
    sub_train, sub_test = split_lists(PKU / "splits" / "cross-subject.txt")
    view_train, view_test = split_lists(PKU / "splits" / "cross-view.txt")
    for sid, s in samples.items():
        video = sid.split("_")[0]
        assert s.split == ("train" if video in sub_train else "test")
        assert video in (sub_train | sub_test) and video in (view_train | view_test)
        assert s.benchmarks == {"xview": "train" if video in view_train else "test"}
    assert {s.split for s in samples.values()} == {"train", "test"}


# The broken corpus's videos: the longest sample video cut to 400 frames, damaged copies of
# it, and files missing their partner; all on the training lists but 0103-R (x-sub test) and
# 9999-X (on no list).
CUT = max(VIDEOS, key=lambda v: (PKU / "skeleton" / f"{v}.txt").stat().st_size)


def broken_corpus(root: Path, with_samples: bool = False) -> None:
    """The sample metadata; the longest video cut to 400 frames as 0101-L (its 2nd row,
    395..446, runs past the end); a few label and skeleton files edited into the usual kinds
    of damage. with_samples: the sample videos beside them, unchanged."""
    (root / "skeleton").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "splits").mkdir()
    shutil.copy(PKU / "actions.tsv", root / "actions.tsv")
    lines = (PKU / "skeleton" / f"{CUT}.txt").read_text().splitlines()[:400]
    corpus = ["0101-L", "0102-L", "0104-L", "0105-L", "0106-L"]
    for bench in ("cross-subject", "cross-view"):
        train, test = split_lists(PKU / "splits" / f"{bench}.txt")
        write_pkummd_split(root / "splits" / f"{bench}.txt",
                           sorted(train - {"0103-R"}) + corpus,
                           sorted(test) + ["0103-R"])  # fmt: skip
    if with_samples:
        for v in VIDEOS:
            for sub in ("skeleton", "labels"):
                shutil.copy(PKU / sub / f"{v}.txt", root / sub / f"{v}.txt")

    def video(name: str, skel: list[str] | None, labels: str | None) -> None:
        if skel is not None:
            (root / "skeleton" / f"{name}.txt").write_text("\n".join(skel) + "\n")
        if labels is not None:
            (root / "labels" / f"{name}.txt").write_text(labels)

    # 0101-L: row 1 fine, row 2 past the end, then a non-numeric, a bad label, start > end
    video("0101-L", lines, "26,206,265,2\n18,395,446,2\n7,x,20,2\n52,1,10,2\n3,50,40,2\n")
    nan = list(lines)  # 0102-L: a NaN inside row 2's segment only
    nan[150] = " ".join(["nan"] + nan[150].split()[1:])
    video("0102-L", nan, "4,1,100,2\n40,101,200,2\n")
    short = list(lines)  # 0103-R: one line of 149 floats: every row of the video is lost
    short[10] = " ".join(short[10].split()[:-1])
    video("0103-R", short, "42,1,50,2\n44,60,80,2\n")
    zeros = ["0 " * 150] * 20 + lines[:20]  # 0104-L: frames 1..20 hold nobody
    video("0104-L", zeros, "1,1,20,2\n2,21,40,2\n")
    video("0105-L", lines, None)  # skeleton without labels
    video("0106-L", None, "1,1,20,2\n")  # labels without skeleton
    video("9999-X", lines, "1,1,20,2\n")  # in no split list


def test_broken_corpus_becomes_rejects(tmp_path):
    broken_corpus(tmp_path)
    src = pkummd.source(tmp_path)
    samples, rejects = convert(src)
    assert sorted(samples) == ["0101-L_0001_A26", "0102-L_0001_A04", "0104-L_0002_A02"]
    first = np.loadtxt((PKU / "skeleton" / f"{CUT}.txt").read_text().splitlines()[:20])
    bodies = int(first[:, :75].any()) + int(first[:, 75:].any())
    assert samples["0104-L_0002_A02"].joints.shape == (bodies, 20, 25, 3)
    assert "run past the skeleton's 400 frames" in rejects["0101-L_0002_A18"]
    assert "start frame 'x' is not an integer" in rejects["0101-L_0003"]
    assert "label 52 outside 1..51" in rejects["0101-L_0004"]
    assert "start <= end" in rejects["0101-L_0005"]
    assert "non-finite in float32" in rejects["0102-L_0002_A40"]
    for sid in ("0103-R_0001_A42", "0103-R_0002_A44"):
        assert rejects[sid] == "skeleton: line 11 has 149 values, expected 150"
    assert "every joint is zero" in rejects["0104-L_0001_A01"]
    assert "has no label file" in rejects["0105-L"]
    assert "has no skeleton file" in rejects["0106-L"]
    assert "neither split list of xsub" in rejects["9999-X_0001_A01"]
    assert all("\n" not in r for r in rejects.values())
    # unlisted="none" keeps such a video, outside both benchmarks' train/test
    kept, _ = convert(pkummd.source(tmp_path, unlisted="none"))
    assert kept["9999-X_0001_A01"].split == "none"
    assert kept["9999-X_0001_A01"].benchmarks == {"xview": "none"}


def test_unusable_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        pkummd.source(tmp_path / "nope")
    with pytest.raises(ValueError, match="no PKU-MMD class list"):
        pkummd.source(tmp_path)
    shutil.copy(PKU / "actions.tsv", tmp_path / "actions.tsv")
    with pytest.raises(ValueError, match="no PKU-MMD split file"):
        pkummd.source(tmp_path)
    shutil.copytree(PKU / "splits", tmp_path / "splits")
    with pytest.raises(ValueError, match="skeleton folder .* does not exist"):
        pkummd.source(tmp_path)
    (tmp_path / "skeleton").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(ValueError, match="skeleton folder .* holds no .txt files"):
        pkummd.source(tmp_path)
    with pytest.raises(ValueError, match="unlisted must be"):
        pkummd.source(PKU, unlisted="drop")
    both = tmp_path / "both.txt"
    both.write_text("Training videos: \n0002-L, 0003-L\nValidataion videos: \n0003-L\n")
    with pytest.raises(ValueError, match="0003-L is in both"):
        pkummd.source(PKU, xsub=both)
    garbled = tmp_path / "garbled.txt"
    garbled.write_text("0002-L, 0003-L\n")
    with pytest.raises(ValueError, match="expected a 'Training... videos:' line"):
        pkummd.source(PKU, xview=garbled)


def test_prepare_run_end_to_end(tmp_path):
    broken_corpus(tmp_path / "src", with_samples=True)
    src = pkummd.source(tmp_path / "src")
    m = run(src, tmp_path / "out", workers=2, files_per_shard=3, progress=False)
    want, rejects = convert(src)
    rows = sum(len(label_rows(PKU / "labels" / f"{v}.txt")) for v in VIDEOS)
    assert len(want) == 3 + rows  # the corpus's 3 good rows, every row of the sample videos
    assert {r["sample_id"] for r in m.rejected} == set(rejects)
    assert len(read_rejected(m, src)) == len(rejects)
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert manifest["benchmarks"]["xview"]["column"] == "split_xview"
    assert sum(c["samples"] for c in manifest["counts"].values()) == len(want)
    assert manifest["counts"]["test"]["samples"] == len(xsub_test_rows())  # 0103-R: all lost
    loaded = load_samples(tmp_path / "out")
    assert [s.sample_id for s in loaded] == [  # unit (video) order, then label-row order
        sid for u in src.units for sid in want if sid.startswith(u.video + "_")
    ]
    for s in loaded:
        np.testing.assert_array_equal(s.joints, want[s.sample_id].joints)
        assert s.benchmarks == want[s.sample_id].benchmarks


def test_transfer_from_synthetic_to_the_pkummd_segments(tiny_data, tmp_path):
    """Issue 4's transfer path on PKU-MMD files: an encoder pretrained on the synthetic set
    (the same 25-joint Kinect v2 layout) fine-tuned on the segments of the sample videos."""
    from mcc.config import EvalConfig, PretrainConfig, apply_overrides
    from mcc.evaluate import evaluate
    from mcc.train import pretrain

    run(pkummd.source(PKU), tmp_path / "pku", workers=1, files_per_shard=3, progress=False)
    tiny = {"model.width": "0.125", "optim.batch_size": "8", "threads": "1"}
    pre = apply_overrides(
        PretrainConfig(),
        {**tiny, "data.path": tiny_data, "loss.queue_size": "16", "optim.epochs": "1"},
    )
    pretrain(pre, tmp_path / "pre", progress=False)
    cfg = apply_overrides(EvalConfig(), {**tiny, "data.path": str(tmp_path / "pku"),
                                         "protocol": "transfer", "optim.epochs": "1",
                                         "frames": "32"})  # fmt: skip
    res = evaluate(cfg, str(tmp_path / "pre" / "checkpoint.pt"), tmp_path / "tr", progress=False)
    assert res["protocol"] == "transfer" and res["source_dataset"] == "synthetic"
    truth = xsub_test_rows()  # the x-sub test segments' labels, from the label files
    assert res["test_samples"] == len(truth) and len(res["confusion"]) == 51
    conf = np.array(res["confusion"])  # rows: true class
    np.testing.assert_array_equal(conf.sum(axis=1), np.bincount(np.array(truth) - 1, minlength=51))
    assert res["top1"] == pytest.approx(100 * np.trace(conf) / len(truth))
    assert res["top5"] >= res["top1"]
