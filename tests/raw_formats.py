"""Writers for the raw skeleton formats that mcc.datasets imports, and a generated stand-in
for the real sample data (the folder conftest looks up; MCC_SHARED_DATA).

One writer per format turns arrays into files laid out as the real ones are (the formats are
described in the importers' docstrings, mcc/datasets/*.py):

- `write_ntu_skeleton`: an NTU RGB+D `.skeleton` file (CRLF, 64-bit bodyIDs, 25 joints x 12
  fields); `ntu_name` its `SsssCcccPpppRrrrAaaa` name, `write_missing_list` the official
  missing-skeleton list;
- `write_kinetics_clip`, `write_kinetics_labels`, `write_class_names`: st-gcn's
  Kinetics-Skeleton JSON (18 OpenPose joints, x, y in [0, 1] and a score, frame_index from 1);
- `write_pkummd_skeleton`, `write_pkummd_labels`, `write_pkummd_actions`,
  `write_pkummd_split`: PKU-MMD's text files (150 floats a frame, body 2 zeros when absent);
- `write_nwucla_clip`: an NW-UCLA clip JSON (20 Kinect v1 joints in metres);
- `write_npz`, `write_layout`: the generic `.npz` import format and a layout JSON.

Coordinates are written as the shortest decimal that reads back as the same float32 (PKU-MMD:
6 decimals, as its files have), so a file parsed, written back and parsed again gives the same
arrays (tests/test_raw_formats.py checks that on the real files).

`build_standin(root)` writes a whole folder with the structure and file names of the real
sample data (ntu/, ntu-meta/, kinetics/, pkummd/, nwucla/all_sqe/, natops/) from small
seeded motions: what the tests of mechanics, errors and fuzzing need when the real recordings
are absent. Its known facts are in STANDIN.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mcc.datasets.synthetic import REST_POSE  # metres, y up, index = NTU joint

# --------------------------------------------------------------------------- numbers


def shortest(a) -> np.ndarray:
    """float64 values of float32(a), each the shortest decimal (up to 12 places) that reads
    back as the same float32: repr() of one writes e.g. 0.745, not 0.7450000047683716.
    Exact in any case (a value needing more places keeps its float32 value)."""
    a32 = np.asarray(a, np.float32)
    out = a32.astype(np.float64)
    done = ~np.isfinite(a32)
    for places in range(13):
        r = np.round(out, places)
        ok = ~done & (r.astype(np.float32) == a32)
        out[ok] = r[ok]
        done |= ok
    return out


def f32(x: float) -> str:
    """The shortest decimal of float32(x), as text (an integer without ".0")."""
    return _text(float(shortest(x)))


def _text(v: float) -> str:
    text = repr(v)
    return text[:-2] if text.endswith(".0") else text


def _f32_list(a: np.ndarray) -> list:
    """A float array as nested lists of Python floats with `shortest`'s digits."""
    return shortest(a).tolist()


# --------------------------------------------------------------------------- motion

# fmt: off
# Kinect v1 (NW-UCLA): hip centre, spine, shoulder centre, head, then arms and legs as NTU's.
KINECT20_REST = REST_POSE[[0, 1, 20, 3, *range(4, 20)]]
# OpenPose 18 in image coordinates (x right, y down), a person about 0.5 of the frame tall:
# nose, neck, right arm, left arm, right leg, left leg, eyes, ears.
OPENPOSE_REST = np.array([
    [0.0, -0.22], [0.0, -0.17], [-0.05, -0.17], [-0.07, -0.08], [-0.08, 0.0],
    [0.05, -0.17], [0.07, -0.08], [0.08, 0.0], [-0.03, 0.02], [-0.03, 0.14], [-0.03, 0.26],
    [0.03, 0.02], [0.03, 0.14], [0.03, 0.26], [-0.01, -0.23], [0.01, -0.23],
    [-0.025, -0.22], [0.025, -0.22],
])
# fmt: on


def motion(rng: np.random.Generator, frames: int, rest: np.ndarray, amplitude: float) -> np.ndarray:
    """(frames, V, D): the rest pose, every joint swaying smoothly (a few sines of random
    frequency and phase each, `amplitude` the largest swing), and a slow drift of the body."""
    t = np.arange(frames)[:, None, None]
    v, d = rest.shape
    out = np.broadcast_to(rest, (frames, v, d)).copy()
    for _ in range(3):
        freq = rng.uniform(0.02, 0.12, size=(1, v, d))
        phase = rng.uniform(0, 2 * np.pi, size=(1, v, d))
        weight = amplitude / 3 * rng.uniform(0.3, 1.0, size=(1, v, d))
        out += weight * np.sin(2 * np.pi * freq * t + phase)
    drift = rng.normal(scale=amplitude / 4, size=(1, 1, d))
    return out + drift * np.linspace(0, 1, frames)[:, None, None]


# --------------------------------------------------------------------------- NTU RGB+D


def ntu_name(setup: int, camera: int, performer: int, replication: int, action: int) -> str:
    """The NTU sample name SsssCcccPpppRrrrAaaa (all 1-based)."""
    return f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}"


def write_ntu_skeleton(
    path: str | Path,
    bodies: Sequence[tuple[int, np.ndarray, np.ndarray | None]],
    newline: str = "\r\n",
) -> Path:
    """An NTU `.skeleton` file. bodies: (bodyID, xyz (T, 25, 3) metres, present (T,) bool or
    None for every frame); in each frame the bodies present are listed in this order.
    The other 9 joint fields are plausible values (the Kinect's depth and colour projections,
    a joint orientation, trackingState 2); the importer keeps only x, y, z."""
    frames = len(bodies[0][1])
    out = [str(frames)]
    for t in range(frames):
        here = [(b, xyz[t]) for b, xyz, present in bodies if present is None or present[t]]
        out.append(str(len(here)))
        for body_id, xyz in here:
            lean = xyz[3, 0] - xyz[0, 0], xyz[3, 2] - xyz[0, 2]
            out.append(f"{body_id} 0 1 1 1 1 0 {f32(lean[0])} {f32(lean[1])} 2")
            out.append(str(len(xyz)))
            z = np.maximum(xyz[:, 2:], 0.1)
            depth = 256 + 365 * xyz[:, :1] / z, 212 - 365 * xyz[:, 1:2] / z
            color = 960 + 1060 * xyz[:, :1] / z, 540 - 1060 * xyz[:, 1:2] / z
            fields = np.concatenate([xyz, *depth, *color], axis=1)
            for row in shortest(fields):
                text = " ".join(map(_text, row.tolist())).replace("e", "E")  # as in C#: 1E-05
                out.append(text + " 0.1 0.2 0.9 0.3 2")
    Path(path).write_bytes((newline.join(out) + newline).encode())
    return Path(path)


def write_missing_list(path: str | Path, names: Iterable[str], total: int = 56880) -> Path:
    """The official missing-skeleton list: two header lines, then one name a line."""
    names = list(names)
    head = [f"{len(names)} of the captured samples in the dataset have missing skeletons.",
            f"Ignore them when you work on the {total} samples."]  # fmt: skip
    Path(path).write_text("\n".join(head + names) + "\n")
    return Path(path)


# --------------------------------------------------------------------------- Kinetics


def write_kinetics_clip(
    path: str | Path, people: np.ndarray, label: str, label_index: int, first_index: int = 1
) -> Path:
    """A Kinetics-Skeleton clip: people (P, T, 18, 3) of x, y, score; person p is listed in
    frame t when any of its values is non-zero. frame_index counts from first_index."""
    data = []
    for t in range(people.shape[1]):
        skeleton = []
        for person in people[:, t]:
            if person.any():
                pose = np.stack([person[:, 0], person[:, 1]], axis=1).ravel()
                skeleton.append({"pose": _f32_list(pose), "score": _f32_list(person[:, 2])})
        data.append({"frame_index": t + first_index, "skeleton": skeleton})
    # st-gcn writes the header after the frames (the importer reads it from the file's tail)
    d = {"data": data, "label": label, "label_index": int(label_index)}
    Path(path).write_text(json.dumps(d))
    return Path(path)


def write_kinetics_labels(path: str | Path, entries: dict[str, tuple[str, int, bool]]) -> Path:
    """A label file: clip id -> (label, label_index, has_skeleton)."""
    d = {sid: {"has_skeleton": has, "label": text, "label_index": int(index)}
         for sid, (text, index, has) in entries.items()}  # fmt: skip
    Path(path).write_text(json.dumps(d, indent=4))
    return Path(path)


def write_class_names(path: str | Path, names: Iterable[str]) -> Path:
    """A class list, one name a line (st-gcn's label_name.txt)."""
    Path(path).write_text("".join(f"{n}\n" for n in names))
    return Path(path)


# --------------------------------------------------------------------------- PKU-MMD


def write_pkummd_skeleton(path: str | Path, joints: np.ndarray) -> Path:
    """A PKU-MMD skeleton file: joints (B, F, 25, 3), B = 1 or 2, one line per frame of
    150 values (body 1, then body 2: zeros when absent), 6 decimals as in the real files."""
    frames = np.zeros((joints.shape[1], 2, 25, 3))
    frames[:, : len(joints)] = np.asarray(joints).transpose(1, 0, 2, 3)
    lines = [" ".join(f"{v:.6f}" for v in row) for row in frames.reshape(len(frames), 150)]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_pkummd_labels(path: str | Path, rows: Iterable[tuple[int, int, int, float]]) -> Path:
    """A label file: `label,start,end,confidence` a line (labels 1-based, frames 1-based)."""
    Path(path).write_text("".join(f"{a},{s},{e},{c:g}\n" for a, s, e, c in rows))
    return Path(path)


def write_pkummd_actions(path: str | Path, names: Sequence[str]) -> Path:
    """actions.tsv: a header line, then `label<TAB>name` for labels 1..K."""
    rows = ["label\taction"] + [f"{i}\t{n}" for i, n in enumerate(names, start=1)]
    Path(path).write_text("\n".join(rows) + "\n")
    return Path(path)


def write_pkummd_split(path: str | Path, train: Iterable[str], test: Iterable[str]) -> Path:
    """A split file: the training videos on line 2, the validation videos on line 4, as the
    official files have them (the spelling "Validataion", the trailing commas)."""
    lines = ["Training videos: ", "".join(f"{v}, " for v in train),
             "Validataion videos: ", ", ".join(test) + ","]  # fmt: skip
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


# --------------------------------------------------------------------------- NW-UCLA


def nwucla_name(action: int, subject: int, repetition: int, view: int) -> str:
    """The clip name aAA_sSS_eEE_vVV."""
    return f"a{action:02d}_s{subject:02d}_e{repetition:02d}_v{view:02d}"


def write_nwucla_clip(path: str | Path, joints: np.ndarray, label: int) -> Path:
    """An NW-UCLA clip JSON: joints (T, 20, 3) metres; label the 1-based class index."""
    path = Path(path)
    d = {"file_name": path.stem, "skeletons": _f32_list(np.asarray(joints)), "label": int(label)}
    path.write_text(json.dumps(d))
    return path


# --------------------------------------------------------------------------- .npz, layouts


def write_npz(path: str | Path, joints: np.ndarray, labels: np.ndarray, **optional) -> Path:
    """The generic import format: joints (N, M, T, V, C) or (N, T, V, C), labels (N,), and
    any of lengths, subjects, split, sample_ids, class_names."""
    np.savez(path, joints=joints, labels=labels, **optional)
    return Path(path)


def write_layout(path: str | Path, layout) -> Path:
    """A layout JSON from a mcc.layouts.Layout or its dict form (extra keys are kept)."""
    d = layout.to_json() if hasattr(layout, "to_json") else dict(layout)
    Path(path).write_text(json.dumps(d, indent=1))
    return Path(path)


# NATOPS's 8 upper-body points (the UEA archive's order) and a tree over them.
NATOPS_LAYOUT = {
    "name": "natops8",
    "num_joints": 8,
    "joint_names": ["hand_tip_left", "hand_tip_right", "elbow_left", "elbow_right",
                    "wrist_left", "wrist_right", "thumb_left", "thumb_right"],
    "edges": [[2, 4], [4, 0], [4, 6], [3, 5], [5, 1], [5, 7], [2, 3]],
    "center": 2,
    "note": "edge [2,3] (elbow to elbow) stands in for the torso, which the data does not record",
}  # fmt: skip


# --------------------------------------------------------------------------- the stand-in

# The generated folder's known facts, for tests that run on it.
STANDIN = {
    # name: (frames, bodies)
    "ntu": {
        ntu_name(1, 2, 1, 1, 8): (60, 1),  # x-sub train, x-view train
        ntu_name(2, 1, 3, 2, 23): (90, 1),  # x-sub test, x-view test
        ntu_name(3, 3, 8, 1, 41): (45, 1),  # x-sub train, x-view train
        ntu_name(1, 1, 7, 2, 50): (75, 2),  # x-sub test, x-view test; punching other person
    },
    "kinetics_clips": 5,
    "kinetics_classes": 400,
    # video: (frames, bodies in some frame, label rows); 0002-L's second person enters late
    "pkummd": {"0002-L": (420, 2, 8), "0005-M": (160, 1, 4), "0007-R": (300, 1, 6)},
    "pkummd_classes": 51,
    "nwucla_subjects": (1, 2, 7),  # x 10 actions x 3 views, one repetition: 90 clips
    "natops": {"train": 30, "test": 30, "classes": 6, "frames": 51},
}
NTU_BODY_ID = 72057594037927936  # 2**56: the Kinect v2's bodyIDs are this large


def build_standin(root: str | Path, seed: int = 0) -> Path:
    """Write a stand-in for the real sample data under root (created); returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    _standin_ntu(root, rng)
    _standin_kinetics(root, rng)
    _standin_pkummd(root, rng)
    _standin_nwucla(root, rng)
    _standin_natops(root, rng)
    return root


def _person_3d(rng, frames: int, rest: np.ndarray, x: float, z: float) -> np.ndarray:
    """A person standing at (x, ~0, z) metres in camera space, of random height, moving."""
    pose = rest * rng.uniform(0.9, 1.1) + [x, rng.uniform(-0.1, 0.1), z]
    return np.round(motion(rng, frames, pose, 0.08), 6)  # micrometres, as the real files


def _standin_ntu(root: Path, rng) -> None:
    (root / "ntu").mkdir(parents=True)
    for k, (name, (frames, bodies)) in enumerate(STANDIN["ntu"].items()):
        people = []
        for b in range(bodies):
            # Two IDs 4 apart near 7.2e16: distinct as ints, one number as float64.
            body_id = NTU_BODY_ID + 4107 + 10 * k + 4 * b
            xyz = _person_3d(rng, frames, REST_POSE, -0.4 + 0.8 * b, rng.uniform(2.8, 3.6))
            people.append((body_id, xyz, None))
        write_ntu_skeleton(root / "ntu" / f"{name}.skeleton", people)
    (root / "ntu-meta").mkdir()
    missing60 = [ntu_name(1, 2, 5, 2, 8), ntu_name(6, 2, 9, 1, 33), ntu_name(17, 3, 20, 2, 60)]
    missing120 = missing60 + [ntu_name(18, 1, 44, 1, 61), ntu_name(32, 3, 106, 2, 120)]
    write_missing_list(root / "ntu-meta" / "NTU_RGBD_samples_with_missing_skeletons.txt",
                       missing60)  # fmt: skip
    write_missing_list(root / "ntu-meta" / "NTU_RGBD120_samples_with_missing_skeletons.txt",
                       missing120, total=114480)  # fmt: skip


def _youtube_id(rng) -> str:
    chars = string.ascii_letters + string.digits + "-_"
    return "_" + "".join(rng.choice(list(chars), 10))


def _standin_kinetics(root: Path, rng) -> None:
    folder = root / "kinetics"
    folder.mkdir(parents=True)
    classes = [f"kinetics class {i:03d}" for i in range(STANDIN["kinetics_classes"])]
    write_class_names(folder / "label_name.txt", classes)
    for k in range(STANDIN["kinetics_clips"]):
        frames, count = int(rng.integers(40, 120)), (1, 3, 2, 4, 3)[k]
        people = np.zeros((count, frames, 18, 3))
        for p in range(count):
            xy = motion(rng, frames, OPENPOSE_REST + rng.uniform(0.25, 0.75, 2), 0.02)
            score = np.clip(rng.uniform(0.05, 0.9) + rng.normal(scale=0.1, size=(frames, 18)),
                            0.01, 1.0)  # fmt: skip
            people[p] = np.round(np.concatenate([np.clip(xy, 0, 1), score[..., None]], axis=2), 3)
            # OpenPose loses a person now and then, and some joints in most frames
            gone = rng.uniform(size=frames) < 0.1
            people[p, gone] = 0
            people[p, rng.uniform(size=(frames, 18)) < 0.05] = 0
        people[:, :2] = 0  # nobody in the first frames, as in the real clips
        label = int(rng.integers(len(classes)))
        # like the real fork's files, two clips carry a label_index that is not the text's
        index = label if k % 2 == 0 else k
        write_kinetics_clip(folder / f"{_youtube_id(rng)}.json", people, classes[label], index)
    listed = {_youtube_id(rng): (classes[i], i, True) for i in rng.integers(400, size=20)}
    write_kinetics_labels(folder / "kinetics_val_label-old.json", listed)


def _standin_pkummd(root: Path, rng) -> None:
    folder = root / "pkummd"
    for sub in ("skeleton", "labels", "splits"):
        (folder / sub).mkdir(parents=True)
    write_pkummd_actions(folder / "actions.tsv",
                         [f"pku action {i:02d}" for i in range(1, 52)])  # fmt: skip
    for video, (frames, bodies, rows) in STANDIN["pkummd"].items():
        joints = np.stack([_person_3d(rng, frames, REST_POSE, -0.5 + b, rng.uniform(2.5, 3.2))
                           for b in range(bodies)])  # fmt: skip
        if bodies == 2:
            joints[1, :40] = 0  # the second person enters at frame 41
        write_pkummd_skeleton(folder / "skeleton" / f"{video}.txt", joints)
        # one action a segment, with gaps; the first (frames 5-40) is before 0002-L's
        # second person enters
        bounds = np.linspace(45, frames - 2, rows).astype(int)
        segments = [(5, 40)] + [(int(a + rng.integers(0, 4)), int(b - rng.integers(1, 4)))
                                for a, b in zip(bounds[:-1], bounds[1:])]  # fmt: skip
        labels = rng.integers(1, 52, size=rows)
        write_pkummd_labels(folder / "labels" / f"{video}.txt",
                            [(int(a), s, e, float(rng.integers(1, 3)))
                             for a, (s, e) in zip(labels, segments)])  # fmt: skip
    # Official-like lists: L and R views train x-view, M tests; x-sub by subject (video number)
    videos = [f"{n:04d}-{v}" for n in range(2, 12) for v in "LMR"]
    write_pkummd_split(folder / "splits" / "cross-view.txt",
                       [v for v in videos if not v.endswith("M")],
                       [v for v in videos if v.endswith("M")])  # fmt: skip
    write_pkummd_split(folder / "splits" / "cross-subject.txt",
                       [v for v in videos if int(v[:4]) % 3 != 1],
                       [v for v in videos if int(v[:4]) % 3 == 1])  # fmt: skip


def _standin_nwucla(root: Path, rng) -> None:
    folder = root / "nwucla" / "all_sqe"
    folder.mkdir(parents=True)
    actions = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
    for label, action in enumerate(actions, start=1):
        for subject in STANDIN["nwucla_subjects"]:
            for view in (1, 2, 3):
                frames = int(rng.choice([1, 3, *range(10, 80)]))  # some clips are very short
                joints = _person_3d(rng, frames, KINECT20_REST, rng.uniform(-0.8, 0.8),
                                    rng.uniform(2.5, 3.5))  # fmt: skip
                write_nwucla_clip(folder / f"{nwucla_name(action, subject, 0, view)}.json",
                                  joints, label)  # fmt: skip


def _standin_natops(root: Path, rng) -> None:
    folder = root / "natops"
    folder.mkdir(parents=True)
    facts = STANDIN["natops"]
    rest = rng.normal(size=(8, 3))
    joints, labels, split, ids = [], [], [], []
    for part in ("train", "test"):
        for i in range(facts[part]):
            label = i % facts["classes"]
            seq = motion(rng, facts["frames"], rest + 0.3 * label, 0.8)
            joints.append(((seq - seq.mean()) / seq.std())[None])  # values standardised
            labels.append(label)
            split.append(part)
            ids.append(f"natops_{part}_{i:03d}")
    write_npz(folder / "natops.npz", np.array(joints, np.float32), np.array(labels),
              split=np.array(split), sample_ids=np.array(ids))  # fmt: skip
    write_layout(folder / "natops_layout.json", NATOPS_LAYOUT)
