"""NTU RGB+D `.skeleton` importer (mcc.datasets.ntu): the sample files (the 4 real ones of the
real sample data, MCC_SHARED_DATA, or the generated stand-in of tests/raw_formats.py), splits
from names, body selection, a corpus of broken files, the missing-skeleton lists, and the
import end to end through mcc.datasets.prepare.run. Tests marked real_data check facts of the
real files."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, real_data

from mcc.datasets import ntu
from mcc.datasets.prepare import NothingConverted, Reject
from mcc.shards import Sample

NTU_DIR = DATA / "ntu"
META = DATA / "ntu-meta"
MISSING60 = META / "NTU_RGBD_samples_with_missing_skeletons.txt"
MISSING120 = META / "NTU_RGBD120_samples_with_missing_skeletons.txt"

NAMES = sorted(p.stem for p in NTU_DIR.glob("*.skeleton"))  # the sample files

# The real files: name: (frames, bodies, label, xsub, xview, xset)
REAL = {
    "S001C001P001R001A011": (82, 1, 10, "train", "test", "test"),
    "S002C001P003R001A003": (100, 1, 2, "test", "test", "train"),
    "S003C001P015R001A034": (71, 1, 33, "train", "test", "test"),
    "S001C003P008R002A058": (70, 2, 57, "train", "train", "test"),
}
TWO_BODY = "S001C003P008R002A058"


def sample_text(name: str) -> str:
    return (NTU_DIR / f"{name}.skeleton").read_text()


def independent_reading(text: str) -> tuple[int, dict[int, np.ndarray]]:
    """(frames, {bodyID: xyz float32 (T, 25, 3), zeros where absent}), bodies in order of
    first appearance: a plain walk of the format, to check the importer against."""
    lines = text.splitlines()
    frames, i, bodies = int(lines[0]), 1, {}
    for t in range(frames):
        count, i = int(lines[i]), i + 1
        for _ in range(count):
            body_id, joints = int(lines[i].split()[0]), int(lines[i + 1])
            rows = [[float(v) for v in line.split()[:3]] for line in lines[i + 2 : i + 2 + joints]]
            bodies.setdefault(body_id, np.zeros((frames, 25, 3), np.float32))[t] = rows
            i += 2 + joints
    return frames, bodies


def one_body_file() -> str:
    return next(n for n in NAMES if len(independent_reading(sample_text(n))[1]) == 1)


def skeleton_text(frames: list[list[tuple[int, np.ndarray]]], joints: int = 25) -> str:
    """A file in the official format: per frame a list of (bodyID, xyz (joints, 3))."""
    out = [str(len(frames))]
    for bodies in frames:
        out.append(str(len(bodies)))
        for body_id, xyz in bodies:
            out += [f"{body_id} 0 1 1 1 1 0 0.01 -0.25 2", str(joints)]
            out += [
                f"{x:.7g} {y:.7g} {z:.7g} 300 200 1100 500 0.1 0.2 0.3 0.9 2" for x, y, z in xyz
            ]
    return "\n".join(out) + "\n"


def unit(path, dataset="ntu60", denoise=False) -> ntu.Unit:
    return ntu.Unit(str(path), dataset, denoise)


# ---------------------------------------------------------------------------------------
# The sample files


def test_there_are_sample_files_of_one_and_two_bodies():
    bodies = {len(independent_reading(sample_text(n))[1]) for n in NAMES}
    assert len(NAMES) >= 3 and bodies == {1, 2}


@pytest.mark.parametrize("name", NAMES)
def test_sample_files_parse_as_an_independent_reading(name):
    text = sample_text(name)
    frames, bodies = independent_reading(text)
    sk = ntu.parse_skeleton(text)
    assert sk.num_frames == frames and sk.body_ids == list(bodies)
    assert all(type(b) is int for b in sk.body_ids)  # 64-bit IDs: never through a float
    np.testing.assert_array_equal(sk.joints, np.stack(list(bodies.values())))
    np.testing.assert_array_equal(sk.present, np.abs(sk.joints).sum(axis=(2, 3)) > 0)
    (s,) = ntu.read(unit(NTU_DIR / f"{name}.skeleton"))
    assert isinstance(s, Sample) and s.joints.dtype == np.float32
    assert s.joints.shape == (min(len(bodies), 2), frames, 25, 3)
    assert (s.sample_id, s.label, s.subject) == (name, int(name[-3:]) - 1, int(name[9:12]))
    assert {s.split, *s.benchmarks.values()} <= {"train", "test"}
    assert set(s.benchmarks) == {"xview"}
    # the kept bodies are bodies of the file, whole
    for kept in s.joints:
        assert any(np.array_equal(kept, b) for b in bodies.values())


@real_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files(name):
    frames, bodies, label, xsub, xview, xset = REAL[name]
    assert sorted(REAL) == NAMES
    sk = ntu.parse_skeleton(sample_text(name))
    assert sk.num_frames == frames and len(sk.body_ids) == bodies
    assert sk.present.all()  # every body tracked in every frame in these 4
    (s60,) = ntu.read(unit(NTU_DIR / f"{name}.skeleton"))
    assert isinstance(s60, Sample)
    assert s60.joints.shape == (bodies, frames, 25, 3) and s60.joints.dtype == np.float32
    assert np.isfinite(s60.joints).all() and np.abs(s60.joints).sum(axis=(1, 2, 3)).min() > 0
    assert (s60.sample_id, s60.label, s60.split) == (name, label, xsub)
    assert s60.subject == int(name[9:12]) and s60.benchmarks == {"xview": xview}
    (s120,) = ntu.read(unit(NTU_DIR / f"{name}.skeleton", "ntu120"))
    assert (s120.split, s120.benchmarks) == (xsub, {"xset": xset})
    np.testing.assert_array_equal(s120.joints, s60.joints)


@real_data
def test_real_values_and_body_ids_are_exact():
    text = sample_text(TWO_BODY)
    sk = ntu.parse_skeleton(text)
    # Two bodyIDs 4 apart near 7.2e16: as float64 (spacing 16) they would be one body.
    assert sk.body_ids == [72057594037944738, 72057594037944734]
    assert all(type(b) is int for b in sk.body_ids)
    assert float(sk.body_ids[0]) == float(sk.body_ids[1])
    first_joint = text.split("\n")[4].split()  # frame 1, body 1, joint 1
    np.testing.assert_array_equal(
        sk.joints[0, 0, 0], np.float32([float(v) for v in first_joint[:3]])
    )


def test_names_and_splits():
    n = ntu.parse_name("S017C002P045R002A120.skeleton")
    assert n == ntu.NtuName(17, 2, 45, 2, 120)
    assert ntu.benchmark_splits(n, "ntu120") == {"xsub": "train", "xset": "test"}
    assert ntu.benchmark_splits("S018C001P044R001A001", "ntu120") == {
        "xsub": "test",
        "xset": "train",
    }
    assert ntu.benchmark_splits("S001C002P038R001A001") == {"xsub": "train", "xview": "train"}
    assert ntu.benchmark_splits("S001C001P039R001A001") == {"xsub": "test", "xview": "test"}
    assert ntu.NTU60_XSUB_TRAIN < ntu.NTU120_XSUB_TRAIN and len(ntu.NTU120_XSUB_TRAIN) == 53
    for bad in ("S001C001P001R001A01", "s001c001p001r001a001", "S001C004P001R001A001",
                "S001C001P001R001A121", "S001C001P001R001A000", "x"):  # fmt: skip
        with pytest.raises(ntu.SkeletonFormatError, match="name"):
            ntu.parse_name(bad)
    with pytest.raises(ValueError, match="ntu60"):
        ntu.benchmark_splits(n, "ntu30")


def test_class_names():
    c60, c120 = ntu.class_names("ntu60"), ntu.class_names("ntu120")
    assert len(c60) == 60 and len(c120) == 120 and c120[:60] == c60 and len(set(c120)) == 120
    assert (c60[0], c60[10], c60[57], c120[59]) == (
        "drink water", "reading", "handshaking", "walking apart from each other")  # fmt: skip
    assert (c120[60], c120[119]) == (
        "put on headphone", "finger-guessing game (playing rock-paper-scissors)")  # fmt: skip


# ---------------------------------------------------------------------------------------
# Body selection


def moving_body(rng, frames: int, amplitude: float, offset: float) -> np.ndarray:
    """(frames, 25, 3): a random pose, taller than wide, swaying along x (amplitude)."""
    pose = rng.normal(size=(25, 3)) * [0.2, 0.6, 0.1] + [offset, 0.0, 3.0]
    sway = amplitude * np.sin(np.linspace(0, 6, frames))[:, None, None] * [1.0, 0.2, 0.1]
    return pose + sway


def test_body_selection_by_motion_energy(tmp_path):
    rng = np.random.default_rng(0)
    T = 40
    still = moving_body(rng, T, 0.0, -1.0) + rng.normal(size=(T, 25, 3)) * 1e-3  # a chair
    big = moving_body(rng, T, 0.5, 0.0)
    small = moving_body(rng, T, 0.1, 1.0)
    # the nearly static body comes first in every frame; `small` leaves for frames 10-19
    frames = [[(7, still[t]), (5, small[t]), (9, big[t])] for t in range(T)]
    for t in range(10, 20):
        frames[t] = [(7, still[t]), (9, big[t])]
    path = tmp_path / "S001C001P001R001A050.skeleton"
    path.write_text(skeleton_text(frames))
    joints, ids = ntu.load_skeleton(path)
    assert ids == [9, 5]  # the still body is dropped, the most energetic comes first
    assert joints.shape == (2, T, 25, 3)
    np.testing.assert_allclose(joints[0], big, atol=1e-5)
    assert not joints[1, 10:20].any()  # absent frames are zeros
    np.testing.assert_allclose(joints[1, :10], small[:10], atol=1e-5)
    sk = ntu.parse_skeleton(path.read_text())
    energy = ntu.motion_energy(sk.joints, sk.present)
    assert energy[0] < 0.2 < energy[1] < energy[2]  # still < small < big
    (s,) = ntu.read(unit(path))
    assert s.joints.shape[0] == 2 and s.label == 49


def test_single_body_is_never_padded(tmp_path):
    rng = np.random.default_rng(1)
    body = moving_body(rng, 12, 0.3, 0.0)
    path = tmp_path / "S001C001P001R001A001.skeleton"
    # a second body listed with all-zero joints (Kinect lost it) is no body
    path.write_text(skeleton_text([[(1, body[t]), (2, np.zeros((25, 3)))] for t in range(12)]))
    joints, ids = ntu.load_skeleton(path)
    assert ids == [1] and joints.shape == (1, 12, 25, 3)


def test_denoise_drops_short_and_object_like_bodies(tmp_path):
    rng = np.random.default_rng(2)
    T = 30
    person = moving_body(rng, T, 0.1, 0.0)
    ghost = moving_body(rng, T, 2.0, 1.0)  # very energetic, but only 5 frames long
    table = rng.uniform(size=(T, 25, 3)) * [1.5, 0.1, 0.3] + rng.normal(size=(T, 1, 3))
    frames = [
        [(1, person[t]), (3, table[t])] + ([(2, ghost[t])] if t < 5 else []) for t in range(T)
    ]
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(skeleton_text(frames))
    _, ids = ntu.load_skeleton(path)
    assert ids == [3, 2]  # by energy alone the table and the ghost win
    _, ids = ntu.load_skeleton(path, denoise=True)
    assert ids == [1]
    (s,) = ntu.read(unit(path, denoise=True))
    assert s.joints.shape == (1, T, 25, 3)
    # denoising never removes the last body, even a short one
    short = tmp_path / "S001C001P001R001A002.skeleton"
    short.write_text(skeleton_text([[(4, ghost[t])] for t in range(5)]))
    assert ntu.load_skeleton(short, denoise=True)[1] == [4]


# ---------------------------------------------------------------------------------------
# Broken inputs


def _replace_line(text: str, k: int, new: str) -> str:
    lines = text.split("\n")
    lines[k] = new
    return "\n".join(lines)


def broken_corpus(text: str) -> dict[str, tuple[str, str]]:
    """name -> (file text, expected words in the reason). `text`: a 1-body real file, so
    0-based line 1 is the first body count, 2 its info line, 3 its joint count, 4.. joints."""
    z = np.zeros((25, 3))
    return {
        "S001C001P099R001A001": (text[: len(text) // 2], "truncated"),
        "S001C001P099R001A002": (text[: text.index("\n", 5000)] + "\n", "truncated"),
        "S001C001P099R001A003": (_replace_line(text, 3, "24"), "24 joints, expected 25"),
        "S001C001P099R001A004": (_replace_line(text, 5, "0.1 0.2 abc" + " 1" * 9), "'abc'"),
        "S001C001P099R001A005": (_replace_line(text, 5, "0.1 0.2 0.3 1 2"), "5 fields"),
        "S001C001P099R001A006": (_replace_line(text, 6, "nan 0.2 0.3" + " 1" * 9), "NaN"),
        "S001C001P099R001A007": (_replace_line(text, 7, "0.1 inf 0.3" + " 1" * 9), "inf"),
        "S001C001P099R001A008": ("0\n", "zero frames"),
        "S001C001P099R001A009": (skeleton_text([[(1, z), (2, z)]] * 4), "all-zero"),
        "S001C001P099R001A010": ("", "empty file"),
        "S001C001P099R001A011": ("3\n0\n0\n0\n", "no body"),
        "S001C001P099R001A012": (_replace_line(text, 2, "1.5e17 0 1 1 1 1 0 0 0 2"), "bodyID"),
        "S001C001P099R001A013": (text + "1\n2\n", "unexpected line"),
        "S001C001P099R001A014": (_replace_line(text, 1, "two"), "not an integer"),
        "S001C001P099R001A015": ("\x00\x01binary", "not an integer"),
        "S001C001P099R001A016": (_replace_line(text, 2, "1 0 1"), "3 fields"),
        "S001C001P099R001A017": ("-1\n", "frame count"),
    }


def test_broken_files_become_one_line_rejects(tmp_path):
    good = sample_text(one_body_file())
    corpus = broken_corpus(good)
    for name, (text, _) in corpus.items():
        (tmp_path / f"{name}.skeleton").write_text(text)
    for name, (_, expected) in corpus.items():
        (r,) = ntu.read(unit(tmp_path / f"{name}.skeleton"))
        assert isinstance(r, Reject), name
        assert r.sample_id == name and "\n" not in r.reason, (name, r.reason)
        assert expected in r.reason, (name, r.reason)
    # a bad name, a missing file, and an NTU120 action read as NTU60
    for name, expected in (("not_ntu", "does not follow"), ("S001C001P001R001A061", "ntu60")):
        (tmp_path / f"{name}.skeleton").write_text(good)
        (r,) = ntu.read(unit(tmp_path / f"{name}.skeleton"))
        assert r.sample_id == name and expected in r.reason
    (r,) = ntu.read(unit(tmp_path / "S009C001P001R001A001.skeleton"))
    assert "cannot read" in r.reason
    # good files beside them still convert, through the Source
    for name in NAMES:
        shutil.copy(NTU_DIR / f"{name}.skeleton", tmp_path)
    src = ntu.source(tmp_path)
    assert src.rejected == [Reject("not_ntu", src.rejected[0].reason)]
    assert src.extra["skipped_ntu120_files"] == 1
    results = [item for u in src.units for item in src.read(u)]
    assert sorted(s.sample_id for s in results if isinstance(s, Sample)) == NAMES
    assert len(results) == len(corpus) + len(NAMES)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(NothingConverted, match="no .skeleton files"):
        ntu.source(tmp_path)
    with pytest.raises(ValueError, match="no such folder"):
        ntu.source(tmp_path / "nope")
    shutil.copy(NTU_DIR / f"{NAMES[0]}.skeleton", tmp_path / "S001C001P001R001A061.skeleton")
    with pytest.raises(NothingConverted, match="1 NTU120-only"):
        ntu.source(tmp_path, "ntu60")
    with pytest.raises(ValueError, match="unknown NTU dataset"):
        ntu.source(tmp_path, "ntu61")


# ---------------------------------------------------------------------------------------
# Source: listing, missing-skeleton lists, NTU60 vs NTU120


def test_missing_lists_are_read():
    m60, m120 = ntu.read_missing_list(MISSING60), ntu.read_missing_list(MISSING120)
    assert m60 and m60 < m120 and not m120 & set(NAMES)
    assert all(ntu.parse_name(n).action <= 60 for n in m60)
    assert all(ntu.parse_name(n) for n in m120)
    # the two header lines are not names
    assert len(m120) == len([x for x in MISSING120.read_text().splitlines() if x.strip()]) - 2


@real_data
def test_official_missing_lists():
    m60, m120 = ntu.read_missing_list(MISSING60), ntu.read_missing_list(MISSING120)
    assert len(m60) == 302 and len(m120) == 535 and m60 < m120
    assert "S001C002P005R002A008" in m60
    assert all(ntu.parse_name(n) for n in m120)


def test_source_lists_subfolders_skips_missing_and_ntu120_only(tmp_path):
    (tmp_path / "s001_to_s017").mkdir()
    (tmp_path / "s018_to_s032").mkdir()
    for name in NAMES:
        shutil.copy(NTU_DIR / f"{name}.skeleton", tmp_path / "s001_to_s017")
    ntu120_only = tmp_path / "s018_to_s032" / "S018C001P042R001A120.skeleton"
    shutil.copy(NTU_DIR / f"{NAMES[0]}.skeleton", ntu120_only)
    gone = NAMES[1]
    missing = tmp_path / "missing.txt"
    missing.write_text(f"2 samples have missing skeletons.\nIgnore them.\n\n{gone}\n")
    src = ntu.source(tmp_path, "ntu60", missing=missing)
    names = [Path(u.path).stem for u in src.units]
    assert names == sorted(set(NAMES) - {gone})
    assert src.rejected == [Reject(gone, ntu.MISSING_REASON)]
    assert src.extra["skipped_ntu120_files"] == 1
    assert (src.name, src.benchmarks, len(src.classes)) == ("ntu60", ("xsub", "xview"), 60)
    assert src.layout.name == "ntu25" and src.read is ntu.read
    src120 = ntu.source(tmp_path, "ntu120", missing=missing)
    assert len(src120.units) == len(NAMES) and src120.benchmarks == ("xsub", "xset")
    assert src120.extra["skipped_ntu120_files"] == 0 and len(src120.classes) == 120
    # a unit runs in a worker process: it and `read` must pickle
    assert pickle.loads(pickle.dumps((src.units[0], src.read))) == (src.units[0], ntu.read)


def test_import_end_to_end(tmp_path):
    from mcc.datasets.prepare import run
    from mcc.shards import load_samples

    src_dir = tmp_path / "raw"
    src_dir.mkdir()
    for name in NAMES:
        shutil.copy(NTU_DIR / f"{name}.skeleton", src_dir)
    (src_dir / "S001C001P001R001A020.skeleton").write_text("2\n1\n")
    gone = NAMES[-1]
    missing = tmp_path / "missing.txt"
    missing.write_text(f"h1\nh2\n{gone}\n")
    m = run(ntu.source(src_dir, "ntu60", missing=missing), tmp_path / "out",
            workers=2, files_per_shard=2, progress=False)  # fmt: skip
    assert {r["sample_id"]: r["reason"].split(":")[0] for r in m.rejected} == {
        gone: ntu.MISSING_REASON,
        "S001C001P001R001A020": "truncated",
    }
    assert m.max_bodies == 2 and m.layout.name == "ntu25" and len(m.classes) == 60
    samples = {s.sample_id: s for s in load_samples(tmp_path / "out")}
    assert sorted(samples) == sorted(set(NAMES) - {gone})
    direct = {n: ntu.read(unit(NTU_DIR / f"{n}.skeleton"))[0] for n in samples}
    for name, s in samples.items():  # the shards hold what the reader gives, in its order
        np.testing.assert_array_equal(s.joints, direct[name].joints)
        assert (s.label, s.split, s.subject) == (int(name[-3:]) - 1, direct[name].split,
                                                 int(name[9:12]))  # fmt: skip
    xview = {s.sample_id: s.split for s in load_samples(tmp_path / "out", benchmark="xview")}
    assert xview == {n: ntu.benchmark_splits(n)["xview"] for n in samples}
    counts = {k: v["samples"] for k, v in m.benchmarks["xview"]["counts"].items()}
    assert counts == {k: list(xview.values()).count(k) for k in set(xview.values())}


@real_data
def test_real_import_counts(tmp_path):
    from mcc.datasets.prepare import run

    m = run(ntu.source(NTU_DIR, "ntu60"), tmp_path / "out", workers=1, progress=False)
    assert {k: v["samples"] for k, v in m.counts.items()} == {"train": 3, "test": 1}
    assert {k: v["samples"] for k, v in m.benchmarks["xview"]["counts"].items()} == {
        "test": 3, "train": 1}  # fmt: skip
