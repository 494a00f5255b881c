"""The raw-format writers of tests/raw_formats.py.

On the real sample data (MCC_SHARED_DATA; marked real_data): every format round-trips, a
real file parsed with the importer's reading function, written back with the writer and
parsed again gives the same arrays, labels and metadata (for the text formats whose fields
the importer keeps, the same bytes). That is what makes the generated stand-in a fair
substitute. Without the real data: the stand-in holds the facts STANDIN states, and is the
same for the same seed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_DATA, real_data
from raw_formats import (
    STANDIN,
    build_standin,
    write_class_names,
    write_kinetics_clip,
    write_kinetics_labels,
    write_layout,
    write_missing_list,
    write_npz,
    write_ntu_skeleton,
    write_nwucla_clip,
    write_pkummd_actions,
    write_pkummd_labels,
    write_pkummd_skeleton,
    write_pkummd_split,
)

from mcc.datasets import kinetics, ntu, nwucla, pkummd
from mcc.datasets.npz import import_npz
from mcc.layouts import get_layout
from mcc.shards import load_samples


def real_files(sub: str, pattern: str) -> list[Path]:
    return sorted((REAL_DATA / sub).glob(pattern))


# --------------------------------------------------------------------------- NTU


def xyz_fields(data: bytes) -> list[list[bytes]]:
    """The x, y, z text of every joint line (12 fields) of a `.skeleton` file."""
    return [x.split()[:3] for x in data.split(b"\r\n") if len(x.split()) == 12]


@real_data
def test_ntu_skeleton_round_trip(tmp_path):
    for path in real_files("ntu", "*.skeleton"):
        sk = ntu.parse_skeleton(path.read_bytes().decode())
        bodies = [(i, sk.joints[b], sk.present[b]) for b, i in enumerate(sk.body_ids)]
        back = ntu.parse_skeleton(write_ntu_skeleton(tmp_path / path.name, bodies).read_text())
        assert (back.num_frames, back.body_ids) == (sk.num_frames, sk.body_ids)
        np.testing.assert_array_equal(back.joints, sk.joints)
        np.testing.assert_array_equal(back.present, sk.present)
        # the Kinect's own digits come back: the x y z fields of each joint line are the same
        again = (tmp_path / path.name).read_bytes()
        assert xyz_fields(path.read_bytes()) == xyz_fields(again)
        (a,), (b,) = ntu.read(ntu.Unit(str(path))), ntu.read(ntu.Unit(str(tmp_path / path.name)))
        assert (a.sample_id, a.label, a.split, a.benchmarks) == (
            b.sample_id, b.label, b.split, b.benchmarks)  # fmt: skip
        np.testing.assert_array_equal(a.joints, b.joints)


@real_data
def test_ntu_missing_list_round_trip(tmp_path):
    for path in real_files("ntu-meta", "*.txt"):
        names = ntu.read_missing_list(path)
        assert ntu.read_missing_list(write_missing_list(tmp_path / path.name, names)) == names


# --------------------------------------------------------------------------- Kinetics


@real_data
def test_kinetics_round_trip(tmp_path):
    folder = REAL_DATA / "kinetics"
    clips = [p for p in real_files("kinetics", "*.json") if not p.name.startswith("kinetics_")]
    out = tmp_path / "clips"
    out.mkdir()
    for path in clips:
        d = json.loads(path.read_text())
        joints = kinetics.clip_joints(d)
        write_kinetics_clip(out / path.name, joints, d["label"], d["label_index"])
        again = json.loads((out / path.name).read_text())
        np.testing.assert_array_equal(kinetics.clip_joints(again), joints)
    classes = kinetics.read_classes(folder / "label_name.txt")
    assert (write_class_names(out / "label_name.txt", classes).read_text()
            == (folder / "label_name.txt").read_text())  # fmt: skip
    # the importer resolves the same labels (and mismatches) from the written headers
    a = kinetics.source(folder, split="test")
    b = kinetics.source(out, split="test")
    assert [(u.sample_id, u.label) for u in a.units] == [(u.sample_id, u.label) for u in b.units]
    assert a.extra["label_mismatch"] == b.extra["label_mismatch"]
    labels = json.loads((folder / "kinetics_val_label-old.json").read_text())
    entries = {k: (v["label"], v["label_index"], v["has_skeleton"]) for k, v in labels.items()}
    assert json.loads(write_kinetics_labels(out / "labels.json", entries).read_text()) == labels


# --------------------------------------------------------------------------- PKU-MMD


@real_data
def test_pkummd_round_trip(tmp_path):
    folder = REAL_DATA / "pkummd"
    for path in real_files("pkummd", "skeleton/*.txt"):
        values = pkummd.parse_skeleton(path.read_text())  # (F, 150)
        joints = values.reshape(len(values), 2, 25, 3).transpose(1, 0, 2, 3)
        written = write_pkummd_skeleton(tmp_path / path.name, joints)
        np.testing.assert_array_equal(pkummd.parse_skeleton(written.read_text()), values)
        assert written.read_text() == path.read_text()
    for path in real_files("pkummd", "labels/*.txt"):
        text = path.read_text()
        rows, bad = pkummd.parse_labels(text, path.stem, 51)
        assert not bad
        confidence = [float(x.split(",")[3]) for x in text.splitlines() if x.strip()]
        written = write_pkummd_labels(tmp_path / f"labels-{path.name}",
                                      [(r.label, r.start, r.end, c)
                                       for r, c in zip(rows, confidence)])  # fmt: skip
        assert pkummd.parse_labels(written.read_text(), path.stem, 51) == (rows, [])
        assert written.read_text() == text
    for path in real_files("pkummd", "splits/*.txt"):
        splits = pkummd.read_split_file(path)
        written = write_pkummd_split(tmp_path / path.name,
                                     [v for v, s in splits.items() if s == "train"],
                                     [v for v, s in splits.items() if s == "test"])  # fmt: skip
        assert pkummd.read_split_file(written) == splits
        assert written.read_text() == path.read_text()
    names = pkummd.read_actions(folder / "actions.tsv")
    written = write_pkummd_actions(tmp_path / "actions.tsv", names)
    assert pkummd.read_actions(written) == names
    assert written.read_text() == (folder / "actions.tsv").read_text()


# --------------------------------------------------------------------------- NW-UCLA


@real_data
def test_nwucla_round_trip(tmp_path):
    files = real_files("nwucla", "all_sqe/*.json")
    rng = np.random.default_rng(0)
    by_length = sorted(files, key=lambda p: p.stat().st_size)
    picked = {by_length[0], by_length[-1], *rng.choice(files, 40, replace=False)}
    for path in sorted(picked):
        d = json.loads(path.read_text())
        name = nwucla.parse_name(path.stem)
        joints = nwucla.clip_joints(d, path.stem, name)
        written = write_nwucla_clip(tmp_path / path.name, joints[0], d["label"])
        back = json.loads(written.read_text())
        np.testing.assert_array_equal(nwucla.clip_joints(back, path.stem, name), joints)
        assert (back["file_name"], back["label"]) == (d["file_name"], d["label"])
        (a,), (b,) = nwucla.read(nwucla.Unit(str(path))), nwucla.read(nwucla.Unit(str(written)))
        assert (a.sample_id, a.label, a.split, a.subject, a.benchmarks) == (
            b.sample_id, b.label, b.split, b.subject, b.benchmarks)  # fmt: skip
        np.testing.assert_array_equal(a.joints, b.joints)


# --------------------------------------------------------------------------- .npz, layout


@real_data
def test_npz_and_layout_round_trip(tmp_path):
    layout_path = REAL_DATA / "natops" / "natops_layout.json"
    layout = get_layout(layout_path)
    written_layout = write_layout(tmp_path / "layout.json", layout)
    assert get_layout(written_layout) == layout
    # the file's own extra keys (joint names, a note) are kept when written from its dict
    raw_layout = json.loads(layout_path.read_text())
    assert json.loads(write_layout(tmp_path / "same.json", raw_layout).read_text()) == raw_layout

    m = import_npz(REAL_DATA / "natops" / "natops.npz", str(layout_path), tmp_path / "a")
    samples = load_samples(tmp_path / "a")
    written = write_npz(
        tmp_path / "natops.npz",
        np.stack([s.joints for s in samples]),
        np.array([s.label for s in samples]),
        split=np.array([s.split for s in samples]),
        sample_ids=np.array([s.sample_id for s in samples]),
    )
    m2 = import_npz(written, str(written_layout), tmp_path / "b")
    assert (m2.counts, m2.classes, m2.layout, m2.rejected) == (m.counts, m.classes, m.layout, [])
    for a, b in zip(samples, load_samples(tmp_path / "b"), strict=True):
        assert (a.sample_id, a.label, a.split, a.subject) == (b.sample_id, b.label, b.split,
                                                              b.subject)  # fmt: skip
        np.testing.assert_array_equal(a.joints, b.joints)


# --------------------------------------------------------------------------- the stand-in


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    return build_standin(tmp_path_factory.mktemp("standin") / "data")


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_standin_is_seeded(standin, tmp_path):
    assert _digest(build_standin(tmp_path / "again")) == _digest(standin)


def test_standin_holds_its_stated_facts(standin):
    for name, (frames, bodies) in STANDIN["ntu"].items():
        sk = ntu.parse_skeleton((standin / "ntu" / f"{name}.skeleton").read_text())
        assert (sk.num_frames, len(sk.body_ids)) == (frames, bodies)
        assert min(sk.body_ids) > 2**56  # 64-bit IDs, as the Kinect's
    src = kinetics.source(standin / "kinetics", split="test")
    assert len(src.units) == STANDIN["kinetics_clips"]
    assert len(src.classes) == STANDIN["kinetics_classes"]
    src = pkummd.source(standin / "pkummd")
    assert len(src.classes) == STANDIN["pkummd_classes"]
    for unit in src.units:
        frames, bodies, rows = STANDIN["pkummd"][unit.video]
        samples = pkummd.read(unit)
        assert len(samples) == rows and all(hasattr(s, "joints") for s in samples)
        assert max(s.joints.shape[0] for s in samples) == bodies
        assert len(pkummd.parse_skeleton(Path(unit.skeleton).read_text())) == frames
    clips = sorted((standin / "nwucla" / "all_sqe").glob("*.json"))
    assert len(clips) == 10 * 3 * len(STANDIN["nwucla_subjects"])
    assert {nwucla.parse_name(p.stem).subject for p in clips} == set(STANDIN["nwucla_subjects"])
    facts = STANDIN["natops"]
    natops = standin / "natops"
    m = import_npz(natops / "natops.npz", str(natops / "natops_layout.json"), natops / "out")
    assert {k: v["samples"] for k, v in m.counts.items()} == {"train": facts["train"],
                                                              "test": facts["test"]}  # fmt: skip
    assert len(m.classes) == facts["classes"] and m.layout.name == "natops8"
    assert {s.joints.shape for s in load_samples(natops / "out")} == {(1, facts["frames"], 8, 3)}
