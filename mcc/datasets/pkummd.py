"""PKU-MMD importer (phase 1 and phase 2 share the file formats; Kinect v2, NTU25 layout).

Input, a root with (each path can be overridden):
    skeleton/<video>.txt   one frame per line: 150 floats = 2 bodies x 25 joints x (x y z),
                           body 1 first, body 2 all zeros when absent
    labels/<video>.txt     one action per line: `label,start,end,confidence`, labels 1..K,
                           frames 1-based inclusive
    actions.tsv            header line, then `label<TAB>name` for labels 1..K (K = 51)
    splits/cross-subject.txt, splits/cross-view.txt
                           line 1 "Training videos:", line 2 comma-separated names,
                           line 3 "Validataion videos:" (sic), line 4 names

One sample per label row: frames start-1 .. end-1 of the video, joints float32
(M, T, 25, 3) with M = 1 or 2 (a body that is all zeros over the segment is dropped),
label = label - 1. sample_id = `<video>_<row>_A<label>`, row the 1-based line number in the
label file (unique even when one action repeats): `0036-L_0001_A26`. subject is unknown
(-1). Benchmarks: "xsub" (the `split` column) and "xview" (`split_xview`); "train" for the
training list, "test" for the validation list. A video in neither list of a benchmark is
rejected by default (`unlisted="none"` keeps it with split "none" instead).

A unit is one video. Bad data becomes Rejects: per label row (past the end of the skeleton,
start > end, label out of range, non-numeric fields, NaN/inf or all zeros in the segment),
or for the whole video's rows (a skeleton line that is not 150 floats, a video without its
label file or skeleton, a video not in the split lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcc.datasets.prepare import Reject, Source, one_line
from mcc.layouts import NTU25
from mcc.shards import Sample
from mcc.untrusted import (
    BadInput,
    finite_float32,
    is_float,
    parse_float,
    parse_int,
    read_bytes,
    regular_file_problem,
    split_lines,
)

BODIES, JOINTS, COORDS = 2, 25, 3
VALUES_PER_LINE = BODIES * JOINTS * COORDS  # 150
BENCHMARKS = ("xsub", "xview")
SPLIT_FILES = {"xsub": "cross-subject.txt", "xview": "cross-view.txt"}
UNLISTED = ("reject", "none")


@dataclass(frozen=True)
class Video:
    """One work unit. splits: {benchmark: "train" / "test" / "none" / ""}, "" = not listed
    (the video is rejected)."""

    video: str
    skeleton: str | None
    labels: str | None
    splits: tuple[tuple[str, str], ...]
    num_classes: int


class BadData(BadInput):
    """A one-line reason why a file or label row cannot be converted."""


# --------------------------------------------------------------------------- source


def source(
    src: str | Path,
    *,
    skeleton_dir: str | Path | None = None,
    label_dir: str | Path | None = None,
    actions: str | Path | None = None,
    xsub: str | Path | None = None,
    xview: str | Path | None = None,
    unlisted: str = "reject",
    name: str = "pkummd",
) -> Source:
    """Describe a PKU-MMD import for `mcc.datasets.prepare.run`.

    src: the root; the other paths default to src/skeleton, src/labels, src/actions.tsv,
        src/splits/cross-subject.txt and src/splits/cross-view.txt.
    unlisted: what to do with a video in neither list of a benchmark: "reject" (default) or
        "none" (keep it, with split "none" in that benchmark).
    Raises ValueError for unusable arguments (a missing or empty folder, a missing or
    malformed actions / split file, a video in both lists of a split file).
    """
    root = Path(src)
    if not root.is_dir():
        raise ValueError(f"PKU-MMD source {root} is not a folder")
    if unlisted not in UNLISTED:
        raise ValueError(f"unlisted must be one of {UNLISTED}, got {unlisted!r}")
    skel_dir = Path(skeleton_dir) if skeleton_dir else root / "skeleton"
    lab_dir = Path(label_dir) if label_dir else root / "labels"
    classes = read_actions(Path(actions) if actions else root / "actions.tsv")
    split_paths = {"xsub": xsub, "xview": xview}
    splits = {
        b: read_split_file(Path(p) if p else root / "splits" / SPLIT_FILES[b])
        for b, p in split_paths.items()
    }
    skeletons, special = _txt_files(skel_dir, "skeleton")
    labels, special_labels = _txt_files(lab_dir, "label")
    rejected = [Reject(p.stem, f"{what} {p}: {why}")
                for what, entries in (("skeleton", special), ("labels", special_labels))
                for p, why in entries]  # fmt: skip
    units = []
    for video in sorted(set(skeletons) | set(labels)):
        per_bench = tuple(
            (b, splits[b].get(video, "none" if unlisted == "none" else "")) for b in BENCHMARKS
        )
        units.append(
            Video(
                video=video,
                skeleton=str(skeletons[video]) if video in skeletons else None,
                labels=str(labels[video]) if video in labels else None,
                splits=per_bench,
                num_classes=len(classes),
            )
        )
    return Source(
        name=name,
        layout=NTU25,
        classes=classes,
        source=str(root.resolve()),
        units=units,
        read=read,
        benchmarks=BENCHMARKS,
        rejected=rejected,
        extra={"unlisted": unlisted},
        files_per_shard=50,  # a video's segments are ~0.3-0.4 MB of float32: ~20 MB
    )


def read_actions(path: Path) -> list[str]:
    """actions.tsv -> the K class names, index = label - 1. A first line whose label field
    is not a number is a header."""
    if not path.is_file():
        raise ValueError(f"no PKU-MMD class list at {path} (actions.tsv: label<TAB>name)")
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    if rows and not rows[0][0].strip().isdigit():
        rows = rows[1:]
    try:
        numbered = [(int(r[0]), r[1].strip()) for r in rows]
    except (ValueError, IndexError):
        raise ValueError(f"{path}: expected lines `label<TAB>name`") from None
    if [n for n, _ in numbered] != list(range(1, len(numbered) + 1)) or not numbered:
        raise ValueError(f"{path}: labels must run 1, 2, ..., K in order")
    return [name for _, name in numbered]


def read_split_file(path: Path) -> dict[str, str]:
    """A PKU-MMD split file -> {video: "train" / "test"}; ValueError when malformed."""
    if not path.is_file():
        raise ValueError(f"no PKU-MMD split file at {path}")
    lines = path.read_text().splitlines()
    heads = {"train": "training", "test": "valid"}  # "Validataion videos:" (sic)
    out: dict[str, str] = {}
    for split, head in heads.items():
        at = [i for i, line in enumerate(lines) if line.strip().lower().startswith(head)]
        if len(at) != 1 or at[0] + 1 >= len(lines):
            raise ValueError(
                f"{path}: expected a '{head.capitalize()}... videos:' line followed by a "
                f"line of comma-separated video names"
            )
        for video in (v.strip() for v in lines[at[0] + 1].split(",")):
            if not video:
                continue  # the files end in a trailing comma
            if out.get(video, split) != split:
                raise ValueError(f"{path}: video {video} is in both the training and the "
                                 f"validation list")  # fmt: skip
            out[video] = split
    return out


def _txt_files(folder: Path, what: str) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """({video: path} of the regular .txt files, [(entry, why skipped)] for the .txt
    entries that are not regular files: a FIFO would block the reader, a device never
    ends)."""
    if not folder.is_dir():
        raise ValueError(f"PKU-MMD {what} folder {folder} does not exist")
    files, special = {}, []
    for p in sorted(folder.iterdir()):
        if p.suffix == ".txt":
            why = regular_file_problem(p)
            if why:
                special.append((p, why))
            else:
                files[p.stem] = p
    if not files:
        raise ValueError(f"PKU-MMD {what} folder {folder} holds no .txt files")
    return files, special


# --------------------------------------------------------------------------- read


@dataclass(frozen=True)
class Row:
    """A parsed label row: 1-based line number, label 1..K, frames 1-based inclusive."""

    line: int
    label: int
    start: int
    end: int

    def sample_id(self, video: str) -> str:
        return f"{video}_{self.line:04d}_A{self.label:02d}"


def read(unit: Video) -> list[Sample | Reject]:
    """One video -> a Sample (joints float32 (M, T, 25, 3)) or Reject per label row.
    Runs in worker processes; never raises for bad data."""
    try:
        return _read(unit)
    except Exception as e:  # noqa: BLE001 - a worker must report, not crash the import
        return [Reject(unit.video, f"unexpected {type(e).__name__}: {one_line(e)}")]


def _read(unit: Video) -> list[Sample | Reject]:
    if unit.labels is None:
        return [Reject(unit.video, f"skeleton {unit.skeleton} has no label file")]
    if unit.skeleton is None:
        return [Reject(unit.video, f"label file {unit.labels} has no skeleton file")]
    try:
        rows, out = parse_labels(read_bytes(unit.labels).decode(), unit.video, unit.num_classes)
    except (OSError, ValueError) as e:  # BadInput, UnicodeDecodeError
        return [Reject(unit.video, f"label file unreadable: {one_line(e)}")]
    if not rows:
        return out or [Reject(unit.video, "label file has no rows")]

    def reject_all(reason: str) -> list[Sample | Reject]:
        return out + [Reject(r.sample_id(unit.video), reason) for r in rows]

    splits = dict(unit.splits)
    unlisted = [b for b in BENCHMARKS if not splits.get(b)]
    if unlisted:
        return reject_all(f"video {unit.video} is in neither split list of {unlisted[0]}")
    try:
        skeleton = parse_skeleton(read_bytes(unit.skeleton).decode())
    except BadInput as e:
        return reject_all(f"skeleton: {e}")
    except (OSError, ValueError) as e:  # UnicodeDecodeError
        return reject_all(f"skeleton unreadable: {one_line(e)}")
    others = {b: s for b, s in splits.items() if b != BENCHMARKS[0]}
    for row in rows:
        sid = row.sample_id(unit.video)
        try:
            joints = segment(skeleton, row.start, row.end)
        except BadData as e:
            out.append(Reject(sid, str(e)))
            continue
        out.append(Sample(sid, row.label - 1, splits[BENCHMARKS[0]], joints, benchmarks=others))
    return out


def parse_labels(text: str, video: str, num_classes: int) -> tuple[list[Row], list[Reject]]:
    """Label file text -> (good rows, Rejects for bad rows). Blank lines are skipped.
    Raises BadInput for line ends that make the rows ambiguous (see split_lines)."""
    rows, rejects = [], []
    for n, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            rows.append(_parse_row(line, n, num_classes))
        except BadData as e:
            rejects.append(Reject(f"{video}_{n:04d}", f"label row {n} {line.strip()!r}: {e}"))
    return rows, rejects


def _parse_row(line: str, n: int, num_classes: int) -> Row:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 4:
        raise BadData(f"expected 4 fields label,start,end,confidence, got {len(fields)}")
    try:  # strictly: int() and float() would take `1_0`
        label = parse_int(fields[0], "label", 1, num_classes)
        start = parse_int(fields[1], "start frame", 1)
        end = parse_int(fields[2], "end frame", 1)
        parse_float(fields[3], "confidence")
    except BadInput as e:
        raise BadData(str(e)) from None
    if start > end:
        raise BadData(f"frames {start}..{end}: need 1 <= start <= end")
    return Row(n, label, start, end)


def parse_skeleton(text: str) -> np.ndarray:
    """Skeleton file text -> float64 (F, 150), one row per line; raises BadInput. Blank
    lines at the end are ignored; anywhere else they would shift the frames, so they are
    errors. Values are checked for float32 per segment (`segment`): a NaN in one frame
    costs only the actions that cover it."""
    lines = split_lines(text)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise BadData("empty file")
    try:  # numpy's reader is strict (no `1_0`) and fast
        values = np.loadtxt(lines, dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        values = None
    if values is None or values.shape != (len(lines), VALUES_PER_LINE):
        raise BadData(_bad_line(lines))  # slow path, errors only
    return values


def _bad_line(lines: list[str]) -> str:
    """Why np.loadtxt refused a skeleton file."""
    for n, line in enumerate(lines, start=1):
        tokens = line.split()
        if len(tokens) != VALUES_PER_LINE:
            return f"line {n} has {len(tokens)} values, expected {VALUES_PER_LINE}"
        if not all(is_float(t) for t in tokens):
            return f"line {n} holds a value that is not a number"
    return "a line holds a separator or value that is not a number"


def segment(skeleton: np.ndarray, start: int, end: int) -> np.ndarray:
    """Frames start-1 .. end-1 of a (F, 150) skeleton -> float32 (M, T, 25, 3) without
    all-zero bodies; raises BadData."""
    if end > len(skeleton):
        raise BadData(f"frames {start}..{end} run past the skeleton's {len(skeleton)} frames")
    seg = skeleton[start - 1 : end].reshape(end - start + 1, BODIES, JOINTS, COORDS)
    try:
        seg = finite_float32(seg, f"frames {start}..{end}")
    except BadInput as e:
        raise BadData(str(e)) from None
    joints = seg.transpose(1, 0, 2, 3)  # (bodies, frames, joints, xyz)
    present = joints.reshape(BODIES, -1).any(axis=1)
    if not present.any():
        raise BadData(f"frames {start}..{end}: every joint is zero")
    return np.ascontiguousarray(joints[present])
