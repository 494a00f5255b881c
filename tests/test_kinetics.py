"""Kinetics-Skeleton importer (mcc.datasets.kinetics) on the sample clips (the 5 real st-gcn
clips of the real sample data, MCC_SHARED_DATA, or the generated stand-in of
tests/raw_formats.py) and on broken copies of them. Tests marked real_data check facts of
the real clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, real_data

from mcc.datasets import kinetics
from mcc.datasets.prepare import Reject, Source, read_rejected, run
from mcc.layouts import OPENPOSE18
from mcc.shards import Sample, load_samples

KINETICS = DATA / "kinetics"
CLASSES = KINETICS / "label_name.txt"
VAL_LABELS = KINETICS / "kinetics_val_label-old.json"
# The real clips (their README): the fork rewrote label_index to 0..4; the text gives the
# true class.
TRUE = {
    "___dTOdxzXY": 172,  # jumping into pool
    "___qijXy2f0": 234,  # playing harp
    "__0muxHV-Uw": 132,  # folding napkins
    "__4frZhaVDs": 32,  # braiding hair
    "__6LvmReo3Y": 262,  # pushing cart
}
CLIPS = sorted(p for p in KINETICS.glob("*.json") if not p.name.startswith("kinetics_"))


def convert(src: Source) -> tuple[dict[str, Sample], dict[str, str]]:
    """Every unit read in-process: ({sample_id: Sample}, {sample_id: reject reason})."""
    samples, rejects = {}, {r.sample_id: r.reason for r in src.rejected}
    for unit in src.units:
        for item in kinetics.read(unit):
            if isinstance(item, Reject):
                rejects[item.sample_id] = item.reason
            else:
                samples[item.sample_id] = item
    return samples, rejects


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def by_text() -> dict[str, int]:
    """Each sample clip's class as its label text names it in the class list."""
    classes = CLASSES.read_text().splitlines()
    return {p.stem: classes.index(load(p)["label"]) for p in CLIPS}


def index_disagrees() -> set[str]:
    """The sample clips whose label_index is not their text's class."""
    return {p.stem for p in CLIPS if load(p)["label_index"] != by_text()[p.stem]}


def expected_joints(clip: dict) -> np.ndarray:
    """An independent reading of a 1-based clip: (2, T, 18, 3), best two by summed score."""
    num_frames = max(f["frame_index"] for f in clip["data"])
    out = np.zeros((2, num_frames, 18, 3), np.float32)
    for f in clip["data"]:
        people = sorted(f["skeleton"], key=lambda p: -sum(p["score"]))[:2]
        for m, p in enumerate(people):
            out[m, f["frame_index"] - 1] = np.c_[p["pose"][0::2], p["pose"][1::2], p["score"]]
    return out


@pytest.fixture(scope="module")
def real():
    src = kinetics.source(KINETICS, split="test")
    return src, *convert(src)


def test_clips_import_with_their_frames_and_people(real):
    src, samples, rejects = real
    assert src.layout == OPENPOSE18 and OPENPOSE18.channels == ("x", "y", "score")
    assert len(src.classes) == 400 and not rejects
    assert sorted(samples) == [p.stem for p in CLIPS]
    assert [u.sample_id for u in src.units] == [p.stem for p in CLIPS]  # sorted units
    for path in CLIPS:
        clip = load(path)
        s = samples[path.stem]
        assert s.split == "test" and s.joints.dtype == np.float32
        want = expected_joints(clip)
        most = max(len(f["skeleton"]) for f in clip["data"])
        want = want[: min(most, 2)]
        assert s.joints.shape == want.shape  # (M, max frame_index, 18, 3)
        np.testing.assert_array_equal(s.joints, want)


def test_label_text_wins_and_every_mismatch_is_listed(real):
    src, samples, _ = real
    assert index_disagrees()  # the sample clips include some whose index is wrong
    assert {sid: s.label for sid, s in samples.items()} == by_text()
    listed = {m["sample_id"]: m for m in src.extra["label_mismatch"]}
    assert set(listed) == index_disagrees()
    for sid, m in listed.items():
        clip = load(KINETICS / f"{sid}.json")
        assert (m["label"], m["label_index"]) == (clip["label"], clip["label_index"])
        assert m["used"] == by_text()[sid] and src.classes[m["used"]] == clip["label"]


@real_data
def test_real_clips_have_their_true_classes(real):
    src, samples, _ = real
    assert len(CLIPS) == 5 and {sid: s.label for sid, s in samples.items()} == TRUE
    assert index_disagrees() == set(TRUE)  # the fork rewrote every label_index
    assert src.classes[TRUE["___qijXy2f0"]] == "playing harp"


def test_index_option_makes_the_index_win():
    src = kinetics.source(KINETICS, split="test", label_from="index")
    samples, _ = convert(src)
    assert {sid: s.label for sid, s in samples.items()} == {
        p.stem: load(p)["label_index"] for p in CLIPS
    }
    assert len(src.extra["label_mismatch"]) == len(index_disagrees())


def test_label_file_is_authoritative_and_clips_it_lacks_use_their_header(tmp_path):
    # The val label file does not list the sample clips: their headers give the labels.
    src = kinetics.source(KINETICS, split="train", label_file=VAL_LABELS)
    assert len(src.units) == len(CLIPS) and src.extra["labelled_from_clip"] == len(CLIPS)
    assert src.extra["listed_without_clip"] == len(load(VAL_LABELS))
    # st-gcn's download root: kinetics_{train,val}/ with their label files.
    root = tmp_path / "kinetics-skeleton"
    true = by_text()
    for part, clips in (("train", CLIPS[:3]), ("val", CLIPS[3:])):
        (root / f"kinetics_{part}").mkdir(parents=True)
        labels = {}
        for p in clips:
            shutil.copy(p, root / f"kinetics_{part}" / p.name)
            text = load(p)["label"]
            labels[p.stem] = {"has_skeleton": True, "label": text, "label_index": true[p.stem]}
        (root / f"kinetics_{part}_label.json").write_text(json.dumps(labels))
    gone = CLIPS[0].stem  # st-gcn's feeder drops has_skeleton: false
    labels = load(root / "kinetics_train_label.json")
    labels[gone]["has_skeleton"] = False
    (root / "kinetics_train_label.json").write_text(json.dumps(labels))
    src = kinetics.source(root, classes_file=CLASSES)
    samples, rejects = convert(src)
    assert rejects == {gone: "label file: has_skeleton is false"}
    assert src.rejected == [Reject(gone, "label file: has_skeleton is false")]
    assert {sid: s.split for sid, s in samples.items()} == {
        **{p.stem: "train" for p in CLIPS[1:3]},
        **{p.stem: "test" for p in CLIPS[3:]},
    }
    # the label file agrees with the class list: nothing flagged, the true classes used
    assert src.extra["label_mismatch"] == []
    assert all(s.label == true[sid] for sid, s in samples.items())


def write_clip(folder: Path, sid: str, frames: list, label="yoga", index=398) -> None:
    (folder / f"{sid}.json").write_text(
        json.dumps({"data": frames, "label": label, "label_index": index})
    )


def person(value: float, score: float) -> dict:
    return {"pose": [value] * 36, "score": [score] * 18}


def test_frames_by_index_and_best_two_people(tmp_path):
    frames = [  # frame 2 is missing; frame 3 has three people; 1-based
        {"frame_index": 1, "skeleton": [person(0.1, 0.5)]},
        {"frame_index": 3, "skeleton": [person(0.2, 0.1), person(0.3, 0.9), person(0.4, 0.5)]},
        {"frame_index": 4, "skeleton": []},
    ]
    write_clip(tmp_path, "a", frames)
    zero_based = [{"frame_index": 0, "skeleton": [person(0.7, 0.2)]}]
    write_clip(tmp_path, "b", zero_based)
    samples, rejects = convert(kinetics.source(tmp_path, split="train", classes_file=CLASSES))
    assert not rejects
    a = samples["a"].joints
    assert a.shape == (2, 4, 18, 3)  # T = the largest frame_index
    assert np.allclose(a[:, 0, 0], [[0.1, 0.1, 0.5], [0, 0, 0]])
    assert not a[:, 1].any() and not a[:, 3].any()  # missing / empty frames are zeros
    assert np.allclose(a[:, 2, 0], [[0.3, 0.3, 0.9], [0.4, 0.4, 0.5]])  # by summed score
    b = samples["b"].joints
    assert b.shape == (1, 1, 18, 3) and np.allclose(b[0, 0, 0], [0.7, 0.7, 0.2])


def test_broken_clips_are_rejected_and_the_good_ones_convert(tmp_path):
    for p in CLIPS[:2]:
        shutil.copy(p, tmp_path / p.name)
    good = load(CLIPS[0])
    k = next(i for i, f in enumerate(good["data"]) if f["skeleton"])  # a frame with somebody
    text = CLIPS[2].read_text()
    (tmp_path / "truncated.json").write_text(text[: len(text) // 2])
    short = json.loads(json.dumps(good))
    short["data"][k]["skeleton"][0]["pose"] = short["data"][k]["skeleton"][0]["pose"][:-2]
    write_clip(tmp_path, "short_pose", short["data"])
    nan = json.loads(json.dumps(good))
    nan["data"][k]["skeleton"][0]["score"][3] = float("nan")
    write_clip(tmp_path, "nan", nan["data"])  # json writes NaN, which Python's json reads
    nobody = [{"frame_index": f["frame_index"], "skeleton": []} for f in good["data"]]
    write_clip(tmp_path, "nobody", nobody)
    as_text = json.loads(json.dumps(good))
    as_text["data"][k]["skeleton"][0]["pose"][0] = "0.5"
    write_clip(tmp_path, "text_value", as_text["data"])
    write_clip(tmp_path, "no_class", good["data"], label="no such class", index=400)
    shutil.copy(CLIPS[1], tmp_path / "no_skeleton.json")
    labels = {"no_skeleton": {"has_skeleton": False, "label": "yoga", "label_index": 398}}
    (tmp_path / "my_labels.json").write_text(json.dumps(labels))

    src = kinetics.source(tmp_path, split="test", label_file=tmp_path / "my_labels.json",
                          classes_file=CLASSES)  # fmt: skip
    samples, rejects = convert(src)
    assert sorted(samples) == sorted(p.stem for p in CLIPS[:2])
    assert "not valid JSON" in rejects["truncated"]
    assert "pose: expected 36 numbers, got 34" in rejects["short_pose"]
    assert "non-finite in float32" in rejects["nan"]
    assert rejects["nobody"] == "nobody in any frame"
    assert "not a number" in rejects["text_value"]
    assert "name none of the 400 classes" in rejects["no_class"]
    assert rejects["no_skeleton"] == "label file: has_skeleton is false"
    assert "my_labels" not in rejects  # the label file is not taken for a clip
    assert all("\n" not in r for r in rejects.values())


def test_unusable_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        kinetics.source(tmp_path / "nope", split="train", classes_file=CLASSES)
    with pytest.raises(ValueError, match="no clip .json files"):
        kinetics.source(tmp_path, split="train", classes_file=CLASSES)
    with pytest.raises(ValueError, match="label file .* does not exist"):
        kinetics.source(KINETICS, split="train", label_file=tmp_path / "labels.json")
    with pytest.raises(ValueError, match="split='train' or 'test'"):
        kinetics.source(KINETICS)
    with pytest.raises(ValueError, match="no Kinetics class list"):
        kinetics.source(KINETICS, split="train", classes_file=tmp_path / "names.txt")
    with pytest.raises(ValueError, match="label_from"):
        kinetics.source(KINETICS, split="train", label_from="both")
    (tmp_path / "kinetics_val").mkdir()
    with pytest.raises(ValueError, match="no label file kinetics_val_label.json"):
        kinetics.source(tmp_path, classes_file=CLASSES)


def test_prepare_run_end_to_end(tmp_path):
    shutil.copytree(KINETICS, tmp_path / "src", ignore=shutil.ignore_patterns("*label*.json"))
    (tmp_path / "src" / "broken.json").write_text('{"data": [')
    src = kinetics.source(tmp_path / "src", split="test")
    m = run(src, tmp_path / "out", workers=2, files_per_shard=4, progress=False)
    assert m.counts["test"]["samples"] == len(CLIPS) and m.max_bodies == 2
    assert [r["sample_id"] for r in m.rejected] == ["broken"]
    assert [r["sample_id"] for r in read_rejected(m, src)] == ["broken"]
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert {r["sample_id"] for r in manifest["extra"]["label_mismatch"]} == index_disagrees()
    assert manifest["layout"]["channels"] == ["x", "y", "score"]
    loaded = {s.sample_id: s for s in load_samples(tmp_path / "out")}
    assert {sid: s.label for sid, s in loaded.items()} == by_text()
    direct, _ = convert(src)
    for sid, s in loaded.items():
        np.testing.assert_array_equal(s.joints, direct[sid].joints)
