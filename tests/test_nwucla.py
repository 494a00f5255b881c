"""NW-UCLA importer (mcc.datasets.nwucla) on the sample clips (the 1484 real ones of the real
sample data, MCC_SHARED_DATA, or the generated stand-in of tests/raw_formats.py), broken
copies of them, the kinect20 layout's `center-align` normalisation on them, and the three
backbones on NW-UCLA input. Tests marked real_data check facts of the real set."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, real_data

from mcc.cli import main as cli_main
from mcc.config import ModelConfig
from mcc.datasets import nwucla
from mcc.datasets.prepare import read_rejected, run
from mcc.layouts import KINECT20
from mcc.models import build_encoder
from mcc.sampling import eval_frames, normalize
from mcc.shards import load_samples, read_manifest

CLIPS = DATA / "nwucla" / "all_sqe"
PER_VIEW = 20  # sample clips per view in the imported subset (seeded)

# Broken files written beside the sample ones: name -> (how to break a clip, reason).
BROKEN = {
    "a01_s01_e90_v01": ("text", "{not json", "not valid JSON"),
    "a02_s02_e90_v02": ("joints", 19, "expected 20 joints, got 19"),
    "a03_s03_e90_v03": ("value", float("nan"), "non-finite in float32"),
    "a04_s04_e90_v01": ("value", 1e39, "non-finite in float32"),
    "a05_s05_e90_v02": ("skeletons", [], "no frames"),
    "a06_s06_e90_v03": ("zeros", None, "no tracked joint"),
    "a08_s07_e90_v01": ("label", 3, "label 3 disagrees with the name's action a08"),
    "a09_s08_e90_v02": ("value", "0.5", "not a list of 3 numbers"),
    "a11_s09_e90_v03": ("file_name", "a11_s09_e91_v03", "file_name 'a11_s09_e91_v03'"),
    "a07_s01_e90_v01": ("name", None, "action 7 is not one of the actions"),
    "clip_a01_s01": ("name", None, "does not follow the NW-UCLA pattern"),
    "a12_s11_e90_v01": ("name", None, "subject 11 outside 1..10"),
}


def broken_clip(good: dict, name: str, how: str, arg) -> str:
    d = json.loads(json.dumps(good))
    d["file_name"] = name
    d["label"] = nwucla.parse_name(name).label + 1 if how != "name" else d["label"]
    if how == "text":
        return arg
    if how == "joints":
        d["skeletons"][1] = d["skeletons"][1][:arg]
    elif how == "value":
        d["skeletons"][-1][7][2] = arg
    elif how == "zeros":
        d["skeletons"] = [[[0.0] * 3 for _ in range(20)] for _ in d["skeletons"]]
    else:
        d[how] = arg
    return json.dumps(d)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path, list[Path]]:
    """(clip folder, prepared folder, the sample clips in it): PER_VIEW seeded sample clips
    per view (symlinked) and the BROKEN files, imported in-process."""
    root = tmp_path_factory.mktemp("nwucla")
    src = root / "clips"
    src.mkdir()
    rng = np.random.default_rng(0)
    real = []
    for view in (1, 2, 3):
        files = sorted(CLIPS.glob(f"*_v{view:02d}.json"))
        real += [files[i] for i in sorted(rng.choice(len(files), PER_VIEW, replace=False))]
    for f in real:
        (src / f.name).symlink_to(f)
    good = next(d for f in real if len((d := json.loads(f.read_text()))["skeletons"]) > 1)
    for name, (how, arg, _) in BROKEN.items():
        (src / f"{name}.json").write_text(broken_clip(good, name, how, arg))
    out = root / "prepared"
    run(nwucla.source(src), out, workers=1, progress=False)
    return src, out, real


def test_every_sample_name_gives_its_splits():
    """Every sample clip by name alone: x-view by the view (1, 2 train), x-sub by the subject
    (1-5 train), the class by the action."""
    src = nwucla.source(CLIPS)
    assert len(src.units) >= 3 * PER_VIEW and not src.rejected
    for u in src.units:
        stem = Path(u.path).stem
        action, subject, view = int(stem[1:3]), int(stem[5:7]), int(stem[-2:])
        n = nwucla.parse_name(stem)
        assert nwucla.ACTIONS[n.label] == action and (n.subject, n.view) == (subject, view)
        assert nwucla.benchmark_splits(n) == {
            "xview": "train" if view < 3 else "test",
            "xsub": "train" if subject <= 5 else "test",
        }


@real_data
def test_names_of_the_full_set_give_the_standard_splits():
    """All 1484 real clips by name alone (fast): the standard cross-view counts, our
    cross-subject counts, 10 classes of 141-173 clips, 10 subjects, 3 views."""
    src = nwucla.source(CLIPS)
    assert len(src.units) == 1484 and not src.rejected
    assert src.benchmarks == ("xview", "xsub") and src.layout is KINECT20
    names = [nwucla.parse_name(Path(u.path).stem) for u in src.units]
    counts = Counter((b, s) for n in names for b, s in nwucla.benchmark_splits(n).items())
    assert counts == {("xview", "train"): 1020, ("xview", "test"): 464,
                      ("xsub", "train"): 754, ("xsub", "test"): 730}  # fmt: skip
    per_class = Counter(n.label for n in names)
    assert sorted(per_class) == list(range(10))
    assert min(per_class.values()) == 141 and max(per_class.values()) == 173
    assert {n.subject for n in names} == set(range(1, 11))
    assert {n.view for n in names} == {1, 2, 3}


def test_name_rules():
    n = nwucla.parse_name("a11_s03_e02_v03")
    assert (n.action, n.subject, n.repetition, n.view, n.label) == (11, 3, 2, 3, 8)
    assert nwucla.CLASSES[n.label] == "throw"
    assert nwucla.benchmark_splits(n) == {"xview": "test", "xsub": "train"}
    assert nwucla.benchmark_splits(nwucla.parse_name("a01_s06_e00_v02")) == {
        "xview": "train", "xsub": "test"}  # fmt: skip
    for bad in ("a10_s01_e00_v01", "a01_s00_e00_v01", "a01_s01_e00_v04", "a01_s01_e00"):
        with pytest.raises(nwucla.BadClip):
            nwucla.parse_name(bad)


def test_subset_import_matches_the_files(prepared):
    src, out, real = prepared
    m = read_manifest(out)
    assert m.name == "nwucla" and m.layout == KINECT20 and m.classes == nwucla.CLASSES
    assert m.counts["train"]["samples"] == 2 * PER_VIEW
    assert m.counts["test"]["samples"] == PER_VIEW
    samples = {s.sample_id: s for s in load_samples(out)}
    assert set(samples) == {f.stem for f in real}
    for f in real:
        d = json.loads(f.read_text())
        s = samples[f.stem]
        n = nwucla.parse_name(f.stem)
        assert s.joints.dtype == np.float32
        assert s.joints.shape == (1, len(d["skeletons"]), 20, 3)
        np.testing.assert_array_equal(s.joints[0], np.asarray(d["skeletons"], np.float32))
        assert s.label == d["label"] - 1 == nwucla.ACTIONS.index(n.action)
        assert s.subject == n.subject
        assert s.split == ("test" if n.view == 3 else "train")
    xsub = {s.sample_id: s.split for s in load_samples(out, benchmark="xsub")}
    assert xsub == {f.stem: "train" if int(f.stem[5:7]) <= 5 else "test" for f in real}


def test_bad_files_are_rejected_with_a_reason(prepared):
    src, out, _ = prepared
    rejected = {r["sample_id"]: r["reason"] for r in read_manifest(out).rejected}
    assert set(rejected) == set(BROKEN)
    for name, (_, _, reason) in BROKEN.items():
        assert reason in rejected[name], (name, rejected[name])
        assert "\n" not in rejected[name]
    # what --strict counts: all of them, the bad names included
    m = read_manifest(out)
    assert len(read_rejected(m, nwucla.source(src))) == len(BROKEN)


def test_cli_prepare_and_strict(prepared, tmp_path, capsys):
    src, _, real = prepared
    out = tmp_path / "cli"
    argv = ["prepare", "nwucla", "--src", str(src), "--workers", "1", "--no-progress"]
    assert cli_main([*argv, "--out", str(out)]) == 0
    assert f"{len(BROKEN)} rejected" in capsys.readouterr().out
    assert cli_main([*argv, "--out", str(tmp_path / "strict"), "--strict"]) == 1
    assert cli_main(["inspect", str(out)]) == 0
    assert "benchmark xsub" in capsys.readouterr().out


def _rigid(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q, rng.normal(size=3)


def test_center_align_on_sample_clips(prepared):
    """Kinect camera coordinates (y up) -> the torso of the first frame on +z, the shoulders
    in the x-z plane pointing +x, the centre joint at the origin; the head ends above the
    feet; a rigidly moved copy of a clip normalises to the same thing."""
    _, out, _ = prepared
    bottom, top, left, right = KINECT20.align
    rng = np.random.default_rng(1)
    for s in load_samples(out):
        a = normalize(s.joints, KINECT20, "center-align")
        first = a[0, 0]
        torso, shoulders = first[top] - first[bottom], first[right] - first[left]
        np.testing.assert_allclose(torso[:2], 0.0, atol=1e-5)
        assert torso[2] > 0.2  # metres: the hip-to-shoulder torso
        assert abs(shoulders[1]) < 1e-5 and shoulders[0] > 0
        np.testing.assert_allclose(a[0, :, KINECT20.center], 0.0, atol=1e-6)
        assert first[3, 2] > 0 > max(first[15, 2], first[19, 2])  # head above both feet
        rot, shift = _rigid(rng)
        moved = (s.joints @ rot.T + shift).astype(np.float32)
        np.testing.assert_allclose(normalize(moved, KINECT20, "center-align"), a, atol=2e-5)


@pytest.mark.parametrize("stream", ["joint", "bone"])
@pytest.mark.parametrize("backbone", ["stgcn", "agcn", "asgcn"])
def test_backbones_on_sample_clips(prepared, backbone, stream):
    _, out, _ = prepared
    samples = load_samples(out)[:4]
    x = np.stack([eval_frames(normalize(s.joints, KINECT20, "center-align"), 32) for s in samples])
    x = torch.from_numpy(x).permute(0, 4, 2, 3, 1)  # (N, M, T, V, C) -> (N, C, T, V, M)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        enc = build_encoder(ModelConfig(backbone=backbone, stream=stream, width=0.125), KINECT20)
        fmap = enc.forward_features(x)
        assert fmap.shape == (4, 1, enc.out_channels, 8, 20) and torch.isfinite(fmap).all()
        assert enc(x).shape == (4, enc.out_channels)
    finally:
        torch.set_num_threads(n)


def test_duplicates_special_files_and_missing_folder(tmp_path):
    clip = sorted(CLIPS.glob("a01_*.json"))[0]
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / clip.name).symlink_to(clip)
    os.mkfifo(tmp_path / "a02_s01_e00_v01.json")  # reading it would block the import
    src = nwucla.source(tmp_path)
    assert len(src.units) == 1
    why = {r.sample_id: r.reason for r in src.rejected}
    assert set(why) == {clip.stem, "a02_s01_e00_v01"}
    assert "duplicate file" in why[clip.stem] and "FIFO" in why["a02_s01_e00_v01"]
    with pytest.raises(ValueError, match="no such folder"):
        nwucla.source(tmp_path / "nowhere")
