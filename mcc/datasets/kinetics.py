"""Kinetics-Skeleton importer (st-gcn's JSON layout; 18 OpenPose joints, channels x, y, score).

Input, either
- st-gcn's download root: `kinetics_train/` and/or `kinetics_val/` (one JSON per clip) beside
  `kinetics_train_label.json` / `kinetics_val_label.json`; train -> split "train", val ->
  split "test"; or
- one folder of clip JSONs with an optional label file and an explicit split.
plus the 400 class names, one per line (st-gcn's `resource/kinetics_skeleton/label_name.txt`).

A clip is `{"data": [{"frame_index": i, "skeleton": [{"pose": [x0, y0, ..., x17, y17],
"score": [s0, ..., s17]}, ...]}, ...], "label": str, "label_index": int}`; a label file maps
clip id (file stem) -> {"has_skeleton", "label", "label_index"}.

Rules (docs/design.md, "Dataset facts"):
- Frames are placed by frame_index (1-based in st-gcn's files; 0-based when some frame has
  index 0), T = the largest index, missing frames are zeros. No crop or pad to 300 frames.
- Per frame, the 2 people with the highest summed score are kept, best first. st-gcn's feeder
  looks at only the first 5 people of a frame; we rank them all. M = the number of person
  slots that hold somebody in some frame (1 or 2). Values are stored as in the file (x, y in
  [0, 1], no centring).
- Labels are resolved once, in `source()`, in the main process: from the label file (which
  st-gcn's feeder treats as authoritative) or, for a clip the label file does not list (or
  without a label file), from the clip's own `label` / `label_index`. Where the text and the
  index disagree with the class list, the text wins (`label_from="index"`: the index wins),
  and the clip is listed in the manifest's `extra["label_mismatch"]`. Because labels are
  settled before any worker starts, the mismatch list is complete without a channel back
  from the worker processes; the units carry the resolved label to `read`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcc.datasets.prepare import Reject, Source, one_line
from mcc.layouts import OPENPOSE18
from mcc.shards import Sample
from mcc.untrusted import (
    FLOAT32_MAX,
    BadInput,
    float32_problem,
    open_regular,
    read_bytes,
    regular_file_problem,
)

NUM_JOINTS = 18
MAX_PEOPLE = 2  # kept per frame (docs/design.md, "Dataset facts")
MAX_FRAMES = 100_000  # a frame_index past this is corrupt (a clip is 10 s, ~300 frames)
LABEL_FILE_BYTES = 512 * 2**20  # st-gcn's training label file is ~40 MB
PARTS = (("train", "train"), ("val", "test"))  # st-gcn folder part -> our split
LABEL_FROM = ("text", "index")
# st-gcn's label files, which may sit among the clips of a one-folder copy.
_LABEL_JSON = re.compile(r"^kinetics_.*label.*\.json$")
# The clip's header, written after "data" by st-gcn's tools: read from the file's tail
# instead of parsing megabytes of frames in the main process.
_HEADER = re.compile(
    rb'"label"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"label_index"\s*:\s*(-?\d+)\s*}\s*$'
)


@dataclass(frozen=True)
class Clip:
    """One work unit: a clip file and its resolved label (or why it has none)."""

    path: str
    sample_id: str
    split: str
    label: int = -1
    problem: str = ""  # set when the label could not be resolved: read() rejects the clip


class BadClip(BadInput):
    """The clip's content cannot be converted (the message is the one-line reason)."""


# --------------------------------------------------------------------------- source


def source(
    src: str | Path,
    *,
    label_file: str | Path | None = None,
    split: str | None = None,
    classes_file: str | Path | None = None,
    label_from: str = "text",
    name: str = "kinetics",
) -> Source:
    """Describe a Kinetics-Skeleton import for `mcc.datasets.prepare.run`.

    src: st-gcn's download root (has `kinetics_train/` or `kinetics_val/`), or one folder of
        clip JSONs. st-gcn's label files in that folder are not taken for clips.
    label_file: single folder only; clip id -> {has_skeleton, label, label_index}. Optional:
        without it (and for clips it does not list) each clip's own header gives the label.
        In the st-gcn root the files `kinetics_{train,val}_label.json` are required.
    split: single folder only, required: "train" or "test".
    classes_file: the class names, one per line; default `src/label_name.txt`.
    label_from: "text" (default) or "index": which wins when a clip's label text and
        label_index name different classes of the list.
    Raises ValueError for unusable arguments (missing/empty folder, missing label or class
    file, bad split); bad clips become Rejects.
    """
    root = Path(src)
    if not root.is_dir():
        raise ValueError(f"Kinetics source {root} is not a folder")
    if label_from not in LABEL_FROM:
        raise ValueError(f"label_from must be one of {LABEL_FROM}, got {label_from!r}")
    classes = read_classes(Path(classes_file) if classes_file else root / "label_name.txt")
    parts = _parts(root, label_file, split)
    by_name = {c: i for i, c in enumerate(classes)}
    units: list[Clip] = []
    rejected: list[Reject] = []
    mismatches: list[dict] = []
    stats = {"labelled_from_clip": 0, "listed_without_clip": 0}
    seen: dict[str, str] = {}
    for folder, labels_path, part_split in parts:
        labels = _read_label_file(labels_path) if labels_path else {}
        skip = {labels_path.resolve()} if labels_path else set()
        clips, special = _clip_files(folder, skip)
        rejected += [Reject(p.stem, f"{p.name}: {why}") for p, why in special]
        stats["listed_without_clip"] += len(set(labels) - {p.stem for p in clips})
        for path in clips:
            sid = path.stem
            if sid in seen:
                units.append(Clip(str(path), sid, part_split, problem=f"duplicate clip id "
                                  f"(already in {seen[sid]})"))  # fmt: skip
                continue
            seen[sid] = part_split
            entry = labels.get(sid)
            if entry is None:
                stats["labelled_from_clip"] += 1
                try:
                    text, index = _header_label(path)
                except BadClip as e:
                    units.append(Clip(str(path), sid, part_split, problem=str(e)))
                    continue
                where = "clip"
            else:
                if entry.get("has_skeleton") is False:
                    rejected.append(Reject(sid, "label file: has_skeleton is false"))
                    continue
                text, index, where = entry.get("label"), entry.get("label_index"), "label file"
            used, agree = resolve_label(text, index, by_name, label_from)
            if not agree:
                mismatches.append(
                    {"sample_id": sid, "label": text, "label_index": index, "used": used,
                     "used_name": classes[used] if used is not None else None, "from": where}
                )  # fmt: skip
            if used is None:
                problem = (f"label {text!r} / label_index {index!r} ({where}) name none of "
                           f"the {len(classes)} classes")  # fmt: skip
                units.append(Clip(str(path), sid, part_split, problem=problem))
            else:
                units.append(Clip(str(path), sid, part_split, label=used))
    units.sort(key=lambda u: (u.split != "train", u.sample_id))
    extra = {"label_from": label_from, "label_mismatch": mismatches, **stats}
    return Source(
        name=name,
        layout=OPENPOSE18,
        classes=classes,
        source=str(root.resolve()),
        units=units,
        read=read,
        rejected=rejected,
        extra=extra,
        files_per_shard=250,  # a clip is ~0.12 MB of float32 (300 x 2 x 18 x 3): ~30 MB
    )


def read_classes(path: Path) -> list[str]:
    """The class names, one per line (blank lines at the end ignored)."""
    if not path.is_file():
        raise ValueError(
            f"no Kinetics class list at {path}: pass classes_file= (st-gcn's "
            f"resource/kinetics_skeleton/label_name.txt, 400 lines)"
        )
    names = [line.strip() for line in path.read_text().splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names or "" in names:
        raise ValueError(f"class list {path}: empty or has blank lines among the names")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"class list {path}: names appear twice: {dup[:5]}")
    return names


def _parts(
    root: Path, label_file: str | Path | None, split: str | None
) -> list[tuple[Path, Path | None, str]]:
    """[(clip folder, label file or None, split)] for either input layout."""
    stgcn = [(root / f"kinetics_{p}", s) for p, s in PARTS if (root / f"kinetics_{p}").is_dir()]
    if stgcn:
        if label_file is not None or split is not None:
            raise ValueError(
                f"{root} is st-gcn's download root (kinetics_train/, kinetics_val/): its label "
                f"files and splits are fixed; label_file/split apply to a single clip folder"
            )
        out = []
        for folder, s in stgcn:
            labels = root / f"{folder.name}_label.json"
            if not labels.is_file():
                raise ValueError(f"{folder} has no label file {labels.name} beside it in {root}")
            out.append((folder, labels, s))
        return out
    if split not in ("train", "test"):
        raise ValueError(
            f"{root} is a single clip folder: pass split='train' or 'test' (got {split!r})"
        )
    if label_file is not None and not Path(label_file).is_file():
        raise ValueError(f"label file {label_file} does not exist")
    return [(root, Path(label_file) if label_file is not None else None, split)]


def _clip_files(folder: Path, skip: set[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(the clip files, [(entry, why skipped)] for .json entries that are not regular files:
    a FIFO would block the reader, a device never ends)."""
    names = sorted(
        p
        for p in folder.iterdir()
        if p.suffix == ".json" and not _LABEL_JSON.match(p.name) and p.resolve() not in skip
    )
    special = [(p, why) for p in names if (why := regular_file_problem(p))]
    clips = [p for p in names if p not in {q for q, _ in special}]
    if not clips:
        raise ValueError(f"no clip .json files in {folder}")
    return clips, special


def _read_label_file(path: Path) -> dict[str, dict]:
    try:
        d = json.loads(read_bytes(path, LABEL_FILE_BYTES))
    except (OSError, ValueError, RecursionError) as e:
        raise ValueError(f"label file {path}: not readable JSON ({one_line(e)})") from None
    if not isinstance(d, dict) or not all(isinstance(v, dict) for v in d.values()):
        raise ValueError(
            f"label file {path}: expected a JSON object clip id -> "
            '{"has_skeleton", "label", "label_index"}'
        )
    return d


def _header_label(path: Path) -> tuple[object, object]:
    """(label, label_index) of a clip file: from its last 4 KB when the header is there
    (st-gcn writes it after the frames), else by parsing the whole file."""
    try:
        with open_regular(path) as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            m = _HEADER.search(f.read())
        if m:
            return json.loads(m.group(1)), int(m.group(2))
        d = json.loads(read_bytes(path))
    except BadInput as e:  # a special or oversized file: the clip's reject reason
        raise BadClip(str(e)) from None
    except (OSError, ValueError, RecursionError) as e:
        raise BadClip(f"not valid JSON: {one_line(e)}") from None
    if not isinstance(d, dict) or "label" not in d or "label_index" not in d:
        raise BadClip("clip has no label / label_index and no label file lists it")
    return d["label"], d["label_index"]


def resolve_label(
    text: object, index: object, by_name: dict[str, int], label_from: str = "text"
) -> tuple[int | None, bool]:
    """(class used or None, whether text and index agree with the class list).

    The preferred field wins when it names a class; otherwise the other one is used (and the
    disagreement is reported by the caller)."""
    by_text = by_name.get(text.strip()) if isinstance(text, str) else None
    valid_index = isinstance(index, int) and not isinstance(index, bool)
    by_index = index if valid_index and 0 <= index < len(by_name) else None
    first, second = (by_text, by_index) if label_from == "text" else (by_index, by_text)
    used = first if first is not None else second
    return used, by_text is not None and by_text == by_index


# --------------------------------------------------------------------------- read


def read(unit: Clip) -> list[Sample | Reject]:
    """One clip -> [Sample] (joints float32 (M, T, 18, 3): x, y, score) or [Reject].
    Runs in worker processes; never raises for bad data."""
    if unit.problem:
        return [Reject(unit.sample_id, unit.problem)]
    try:
        d = json.loads(read_bytes(unit.path))
        joints = clip_joints(d)
    except (OSError, ValueError, RecursionError) as e:  # BadInput, JSONDecodeError, ...
        reason = str(e) if isinstance(e, BadInput) else f"not valid JSON: {one_line(e)}"
        return [Reject(unit.sample_id, reason)]
    except Exception as e:  # noqa: BLE001 - a worker must report, not crash the import
        return [Reject(unit.sample_id, f"unexpected {type(e).__name__}: {one_line(e)}")]
    return [Sample(unit.sample_id, unit.label, unit.split, joints)]


def clip_joints(d: object) -> np.ndarray:
    """A parsed clip -> float32 (M, T, 18, 3), M in {1, 2}; raises BadClip."""
    if not isinstance(d, dict) or not isinstance(d.get("data"), list):
        raise BadClip("not a Kinetics-Skeleton clip: no 'data' list")
    frames = {}  # frame_index -> people, best first: list of (18, 3)
    for k, frame in enumerate(d["data"]):
        if not isinstance(frame, dict):
            raise BadClip(f"data[{k}] is not an object")
        idx = frame.get("frame_index")
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx <= MAX_FRAMES:
            raise BadClip(f"data[{k}]: frame_index {idx!r} is not an integer in 0..{MAX_FRAMES}")
        if idx in frames:
            raise BadClip(f"frame_index {idx} appears twice")
        frames[idx] = _frame_people(frame.get("skeleton"), k)
    if not frames:
        raise BadClip("no frames")
    base = 0 if 0 in frames else 1  # st-gcn's files count from 1
    num_frames = max(frames) - base + 1
    out = np.zeros((MAX_PEOPLE, num_frames, NUM_JOINTS, 3), np.float32)
    for idx, people in frames.items():
        for m, person in enumerate(people):
            out[m, idx - base] = person
    used = np.abs(out).reshape(MAX_PEOPLE, -1).any(axis=1)
    if not used[0]:
        raise BadClip("nobody in any frame")
    return out[: 2 if used[1] else 1]


def _frame_people(skeleton: object, k: int) -> list[np.ndarray]:
    """The frame's people as (18, 3) arrays (x, y, score), the MAX_PEOPLE highest summed
    scores first; all-zero entries (OpenPose found nothing) are not people."""
    if not isinstance(skeleton, list):
        raise BadClip(f"data[{k}]: 'skeleton' is not a list")
    people = []
    for p, person in enumerate(skeleton):
        where = f"data[{k}].skeleton[{p}]"
        if not isinstance(person, dict):
            raise BadClip(f"{where} is not an object")
        pose = _numbers(person.get("pose"), 2 * NUM_JOINTS, f"{where}.pose")
        score = _numbers(person.get("score"), NUM_JOINTS, f"{where}.score")
        arr = np.stack([pose[0::2], pose[1::2], score], axis=1)
        if arr.any():
            people.append(arr)
    # Stable sort: equal scores keep the file's order.
    people.sort(key=lambda a: -float(a[:, 2].sum()))
    return people[:MAX_PEOPLE]


_NUMBER_TYPES = frozenset((int, float))  # exact types: not bool, not str


def _numbers(values: object, n: int, where: str) -> np.ndarray:
    """A JSON list of n finite numbers -> float64 (n,); raises BadClip."""
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise BadClip(f"{where}: expected {n} numbers, got {got}")
    # Strict: numpy would quietly turn "0.5" or True into numbers.
    if not _NUMBER_TYPES.issuperset(map(type, values)):
        raise BadClip(f"{where}: holds a value that is not a number")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise BadClip(f"{where}: a number beyond float range") from None
    if not np.abs(arr).max() <= FLOAT32_MAX:  # stored as float32: 1e39 would become inf
        raise BadClip(f"{where}: {float32_problem(arr)}")
    return arr
