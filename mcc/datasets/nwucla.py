"""Northwestern-UCLA Multiview Action 3D (NW-UCLA) importer: Kinect v1, 20 joints (kinect20).

Input: a folder of clip JSONs (the `all_sqe/` folder that CTR-GCN and most skeleton papers
use), one clip a file, `aAA_sSS_eEE_vVV.json` (action, subject, repetition, view):

    {"file_name": "a01_s01_e00_v01", "skeletons": [frames][20][3], "label": 1..10}

x, y, z in metres, camera coordinates (y up). The 10 classes are the actions 1-6, 8, 9, 11,
12 in that order; `label` is the 1-based class index and must agree with the name's action.

One sample per file: joints float32 (1, T, 20, 3) with T the clip's own length (1-201 frames),
label = class index (0-based), subject = sSS. Benchmarks:
- "xview" (the `split` column), the standard one: views 1 and 2 train, view 3 tests
  (1020 / 464 clips).
- "xsub" (`split_xsub`): NW-UCLA has no standard cross-subject protocol; we train on subjects
  1-5 and test on 6-10 (754 / 730 clips, 64-98 per class on each side, every view on both).

Bad files become Rejects with a one-line reason (files are read through mcc.untrusted, the
checks the importers share): a FIFO, device or folder named *.json, a file over the size
limit, a name off the pattern or an action that is not a class, unreadable or invalid JSON,
no `skeletons` list, a frame that is not 20 joints x 3 numbers, a value that is not a number,
a value not finite as float32, no frames or no tracked joint in any frame, a `label` or
`file_name` disagreeing with the file's name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcc.datasets.prepare import NothingConverted, Reject, Source, one_line
from mcc.layouts import KINECT20
from mcc.shards import Sample
from mcc.untrusted import (
    BadInput,
    float32_problem,
    not_float32,
    read_bytes,
    regular_file_problem,
)

NUM_JOINTS, COORDS = 20, 3
# Class k (0-based) is action ACTIONS[k] of the file names.
ACTIONS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
CLASSES = [
    "pick up with one hand",
    "pick up with two hands",
    "drop trash",
    "walk around",
    "sit down",
    "stand up",
    "donning",
    "doffing",
    "throw",
    "carry",
]
NUM_SUBJECTS, NUM_VIEWS = 10, 3
BENCHMARKS = ("xview", "xsub")
XVIEW_TRAIN_VIEWS = (1, 2)  # the standard cross-view benchmark: view 3 tests
XSUB_TRAIN_SUBJECTS = (1, 2, 3, 4, 5)  # our choice (no standard protocol): 6-10 test
_NAME = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_v(\d+)$")


class BadClip(BadInput):
    """A one-line reason why a clip cannot be converted."""


@dataclass(frozen=True)
class ClipName:
    action: int
    subject: int
    repetition: int
    view: int

    @property
    def label(self) -> int:
        """The 0-based class index."""
        return ACTIONS.index(self.action)


def parse_name(stem: str) -> ClipName:
    """`a01_s01_e00_v01` -> ClipName; raises BadClip for a name off the pattern, an action
    that is not one of the 10 classes, a subject outside 1..10 or a view outside 1..3."""
    m = _NAME.match(stem)
    if not m:
        raise BadClip(f"name {stem!r} does not follow the NW-UCLA pattern aAA_sSS_eEE_vVV")
    n = ClipName(*(int(g) for g in m.groups()))
    if n.action not in ACTIONS:
        raise BadClip(f"name {stem!r}: action {n.action} is not one of the actions {ACTIONS}")
    if not 1 <= n.subject <= NUM_SUBJECTS:
        raise BadClip(f"name {stem!r}: subject {n.subject} outside 1..{NUM_SUBJECTS}")
    if not 1 <= n.view <= NUM_VIEWS:
        raise BadClip(f"name {stem!r}: view {n.view} outside 1..{NUM_VIEWS}")
    return n


def benchmark_splits(name: ClipName) -> dict[str, str]:
    """{"xview": "train"/"test", "xsub": "train"/"test"} for a clip."""
    return {
        "xview": "train" if name.view in XVIEW_TRAIN_VIEWS else "test",
        "xsub": "train" if name.subject in XSUB_TRAIN_SUBJECTS else "test",
    }


# --------------------------------------------------------------------------- source


@dataclass(frozen=True)
class Unit:
    """One work unit: a clip file (picklable)."""

    path: str


def source(src: str | Path) -> Source:
    """Describe an NW-UCLA import for `mcc.datasets.prepare.run`: one unit per `*.json` under src
    (subfolders too), sorted by name. Duplicates (the same name in two folders) are rejected
    up front; names off the pattern by `read`, so that `--strict` counts them. Raises
    ValueError (no such folder) or NothingConverted (no clip file)."""
    root = Path(src)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder (expected NW-UCLA clip .json files)")
    files = sorted(root.rglob("*.json"), key=lambda p: (p.name, str(p)))
    if not files:
        raise NothingConverted(f"{root}: no .json clip files (subfolders searched too)")
    units, rejected, seen = [], [], {}
    for path in files:
        sid = path.stem
        why = regular_file_problem(path)  # a FIFO would block the reader, a device never ends
        if why:
            rejected.append(Reject(sid, f"{path}: {why}"))
        elif sid in seen:
            rejected.append(Reject(sid, f"duplicate file {path} (already read {seen[sid]})"))
        else:
            seen[sid] = path
            units.append(Unit(str(path)))
    return Source(
        name="nwucla",
        layout=KINECT20,
        classes=list(CLASSES),
        source=str(root.resolve()),
        units=units,
        read=read,
        benchmarks=BENCHMARKS,
        rejected=rejected,
        extra={
            "actions": list(ACTIONS),
            "xview_train_views": list(XVIEW_TRAIN_VIEWS),
            "xsub_train_subjects": list(XSUB_TRAIN_SUBJECTS),
            "coordinates": "Kinect v1 camera coordinates in metres, y up",
        },
        files_per_shard=2000,  # a clip is ~10 KB of float32: the whole set is one ~15 MB shard
    )


# --------------------------------------------------------------------------- read


def read(unit: Unit) -> list[Sample | Reject]:
    """One clip file -> [Sample] (joints float32 (1, T, 20, 3)) or [Reject]. Runs in worker
    processes; never raises for bad data."""
    sid = Path(unit.path).stem
    try:
        name = parse_name(sid)
        joints = clip_joints(_load(unit.path), sid, name)
    except BadInput as e:  # BadClip, or read_bytes: not a regular file, too large, unreadable
        return [Reject(sid, str(e))]
    except Exception as e:  # noqa: BLE001 - a worker must report, not crash the import
        return [Reject(sid, f"unexpected {type(e).__name__}: {one_line(e)}")]
    splits = benchmark_splits(name)
    return [
        Sample(
            sample_id=sid,
            label=name.label,
            split=splits.pop("xview"),
            joints=joints,
            subject=name.subject,
            benchmarks=splits,
        )
    ]


def _load(path: str) -> object:
    data = read_bytes(path)  # BadInput: not a regular file, too large, unreadable
    try:
        return json.loads(data)  # NaN / Infinity parse: caught as non-finite values below
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8
        raise BadClip(f"not valid JSON: {one_line(e)}") from None


def clip_joints(d: object, sid: str, name: ClipName) -> np.ndarray:
    """A parsed clip -> float32 (1, T, 20, 3); raises BadClip."""
    if not isinstance(d, dict) or not isinstance(d.get("skeletons"), list):
        raise BadClip("not an NW-UCLA clip: no 'skeletons' list")
    label = d.get("label", name.label + 1)
    if type(label) is not int or label != name.label + 1:
        raise BadClip(
            f"label {label!r} disagrees with the name's action a{name.action:02d} "
            f"(class {name.label + 1} of 1..{len(ACTIONS)})"
        )
    file_name = d.get("file_name", sid)
    if file_name != sid:
        raise BadClip(f"file_name {file_name!r} disagrees with the file's name {sid!r}")
    frames = d["skeletons"]
    if not frames:
        raise BadClip("no frames")
    for t, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != NUM_JOINTS:
            got = f"{len(frame)} joints" if isinstance(frame, list) else type(frame).__name__
            raise BadClip(f"frame {t}: expected {NUM_JOINTS} joints, got {got}")
        for v, joint in enumerate(frame):
            # Strict: numpy would quietly turn "0.5" or True into numbers.
            if (
                not isinstance(joint, list)
                or len(joint) != COORDS
                or not all(type(x) in (int, float) for x in joint)
            ):
                raise BadClip(f"frame {t}, joint {v}: not a list of {COORDS} numbers")
    try:
        values = np.asarray(frames, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise BadClip("a coordinate is beyond float range") from None
    problem = float32_problem(values)  # stored as float32: 1e39 would become inf
    if problem:
        t, v = np.argwhere(not_float32(values).any(axis=2))[0]
        raise BadClip(f"frame {t}, joint {v}: {problem}")
    arr = values.astype(np.float32)
    if not arr.any():
        raise BadClip("no tracked joint in any frame (all zeros)")
    return arr[None]
