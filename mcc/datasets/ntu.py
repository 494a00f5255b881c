"""NTU RGB+D 60 / 120 importer: raw `.skeleton` text files -> `mcc.datasets.prepare.Source`.

One file is one sample. Its name `SsssCcccPpppRrrrAaaa` carries the setup, camera, performer,
replication and action (1-based); the label is action - 1, and the standard benchmark splits
(docs/design.md, "Dataset facts") follow from the name alone:

    ntu60:  xsub (performer in NTU60_XSUB_TRAIN), xview (camera 2 or 3 trains)
    ntu120: xsub (performer in NTU120_XSUB_TRAIN), xset (even setup numbers train)

The first benchmark (xsub) goes to the `split` column, the other to `Sample.benchmarks`.

File format (Kinect v2 SDK dump, whitespace separated, one record per line):

    frame count
    per frame:  body count
      per body: 10-field info line (bodyID: a 64-bit integer, parsed as int)
                joint count (25)
                25 lines of 12 fields: x y z depthX depthY colorX colorY
                                       orientW orientX orientY orientZ trackingState

Only x, y, z (metres, camera space) are kept.

Body selection: a body is a bodyID, tracked across frames. Bodies whose joints are all zero
in every frame are dropped. Of the others, at most two are kept: those with the largest
motion energy, the sum over joints and coordinates of the standard deviation over the frames
where the body is present (2s-AGCN's data preparation keeps the two most energetic bodies;
its energy is the per-channel std over frames and joints together, which also grows with the
body's size: ours measures motion only, docs/design.md). The most energetic body comes
first. In frames where a kept body is absent its joints are zero. A sequence keeps all its
frames, so T is the file's frame count.

Optional denoising (`denoise=True`, off by default): the stricter rules of CTR-GCN's /
PYSKL's NTU preparation, applied only while more than one body remains and never removing
the last one: (1) drop bodies present in at most `DENOISE_MIN_FRAMES` frames (a short ghost
skeleton); (2) drop bodies whose x spread exceeds 0.8 x their y spread in at least 69.754 %
of their frames (a wide, flat "body" is usually furniture). Their further steps (a motion
cap, splicing non-overlapping bodies into one actor, cutting empty frames) are not done.

Speed: the file is split into lines once, the structure is walked in Python one line per
frame and per body, and all joint lines are converted by one `np.loadtxt` call, which also
validates every field (about 2-3 ms for a 100-frame file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcc.datasets.prepare import NothingConverted, Reject, Source
from mcc.layouts import NTU25
from mcc.shards import Sample
from mcc.untrusted import (
    BadInput,
    float32_problem,
    is_float,
    not_float32,
    parse_int,
    read_bytes,
    regular_file_problem,
    split_lines,
)

DATASETS = ("ntu60", "ntu120")
BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}
NUM_CLASSES = {"ntu60": 60, "ntu120": 120}

# Split rules (docs/design.md, "Dataset facts"; the NTU RGB+D and NTU RGB+D 120 papers).
NTU60_XSUB_TRAIN = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
)
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN | frozenset(
    (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85,
     86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
)  # fmt: skip
XVIEW_TRAIN_CAMERAS = frozenset((2, 3))  # camera 1 is the x-view test set


def xset_is_train(setup: int) -> bool:
    """NTU120 cross-setup: even setup numbers train, odd ones test."""
    return setup % 2 == 0


NUM_JOINTS = 25
INFO_FIELDS = 10  # bodyID clippedEdges handLeft(conf, state) handRight(conf, state)
#                   isRestricted leanX leanY trackingState
JOINT_FIELDS = 12
XYZ = slice(0, 3)
MAX_BODIES_PER_FRAME = 6  # the Kinect v2 SDK tracks at most 6 bodies (BODY_COUNT)
BODY_ID_MAX = 2**64 - 1  # bodyID is an unsigned 64-bit integer
# Bodies are assembled densely, (distinct bodyIDs, frames, 25, 3): a file that gives every
# frame a new bodyID makes that quadratic in its length. Real files need well under 1 MB.
MAX_ASSEMBLED_BYTES = 256 * 2**20

# CTR-GCN / PYSKL denoising thresholds (their get_raw_denoised_data.py).
DENOISE_MIN_FRAMES = 11  # a body present in <= this many frames is noise
DENOISE_SPREAD_RATIO = 0.8  # a frame is object-like when x spread > 0.8 * y spread ...
DENOISE_SPREAD_FRACTION = 0.69754  # ... and a body is an object when this share of frames is

# The official action names (the NTU RGB+D 120 README / paper); A1-A60 are NTU RGB+D 60.
ACTIONS = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup",
    "throw", "sitting down", "standing up (from sitting position)", "clapping", "reading",
    "writing", "tear up paper", "wear jacket", "take off jacket", "wear a shoe",
    "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone",
    "playing with phone/tablet", "typing on a keyboard", "pointing to something with finger",
    "taking a selfie", "check time (from watch)", "rub two hands together", "nod head/bow",
    "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling",
    "touch head (headache)", "touch chest (stomachache/heart pain)", "touch back (backache)",
    "touch neck (neckache)", "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person",
    "point finger at the other person", "hugging other person",
    "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    # A61-A120: NTU RGB+D 120 only
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball",
    "tennis bat swing", "juggling table tennis balls", "hush (quite)", "flick hair",
    "thumb up", "thumb down", "make ok sign", "make victory sign", "staple book",
    "counting money", "cutting nails", "cutting paper (using scissors)", "snapping fingers",
    "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper",
    "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag",
    "take off bag", "put something into a bag", "take something out of a bag", "open a box",
    "move heavy objects", "shake fist", "throw up cap/hat", "hands up (both hands)",
    "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself",
    "blow nose", "hit other person with something", "wield knife towards other person",
    "knock over other person (hit with body)", "grab other person's stuff",
    "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person",
    "follow other person", "whisper in other person's ear",
    "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
)  # fmt: skip


def class_names(dataset: str) -> list[str]:
    """The dataset's class names in label order (label = action - 1)."""
    return list(ACTIONS[: NUM_CLASSES[_check_dataset(dataset)]])


class SkeletonFormatError(BadInput):
    """A raw file that cannot be converted; the message is the one-line Reject reason."""


# ---------------------------------------------------------------------------------------
# Names and splits


_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


@dataclass(frozen=True)
class NtuName:
    """The fields of `SsssCcccPpppRrrrAaaa` (all 1-based, as in the name)."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int


def parse_name(name: str) -> NtuName:
    """`S001C002P003R002A013` (a stem, a file name or a path) -> its fields.
    Raises SkeletonFormatError (one line) for a name that does not follow the pattern."""
    stem = Path(name).name.removesuffix(".skeleton")
    m = _NAME.fullmatch(stem)
    if m is None:
        raise SkeletonFormatError(
            f"name {stem!r} does not follow the NTU pattern SsssCcccPpppRrrrAaaa"
        )
    parsed = NtuName(*(int(g) for g in m.groups()))
    for field, value, hi in (
        ("setup", parsed.setup, 999),
        ("camera", parsed.camera, 3),
        ("performer", parsed.performer, 999),
        ("replication", parsed.replication, 999),
        ("action", parsed.action, 120),
    ):
        if not 1 <= value <= hi:
            raise SkeletonFormatError(f"name {stem!r}: {field} {value} outside 1..{hi}")
    return parsed


def benchmark_splits(name: str | NtuName, dataset: str = "ntu60") -> dict[str, str]:
    """{benchmark: "train"/"test"} for a sample name, e.g. for ntu60
    {"xsub": "train", "xview": "test"}; for ntu120 the keys are "xsub" and "xset"."""
    n = name if isinstance(name, NtuName) else parse_name(name)
    _check_dataset(dataset)

    def split(train: bool) -> str:
        return "train" if train else "test"

    if dataset == "ntu60":
        return {
            "xsub": split(n.performer in NTU60_XSUB_TRAIN),
            "xview": split(n.camera in XVIEW_TRAIN_CAMERAS),
        }
    return {
        "xsub": split(n.performer in NTU120_XSUB_TRAIN),
        "xset": split(xset_is_train(n.setup)),
    }


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"unknown NTU dataset {dataset!r}: use one of {DATASETS}")
    return dataset


# ---------------------------------------------------------------------------------------
# Parsing


@dataclass
class Skeleton:
    """A parsed file, every body kept.

    joints: float32 (B, T, 25, 3), zeros where a body is absent; present: bool (B, T);
    body_ids: the B bodyIDs (64-bit ints) in order of first appearance.
    """

    num_frames: int
    body_ids: list[int]
    joints: np.ndarray
    present: np.ndarray


def parse_skeleton(text: str) -> Skeleton:
    """Parse the text of one `.skeleton` file. Raises SkeletonFormatError (one line, with
    the 1-based line number) for any malformed input: truncation, a wrong joint or field
    count, a non-numeric coordinate or one that is not finite as float32, a count written
    other than in ASCII digits (`1_0`), more than 6 bodies in a frame, zero frames, no body
    at all, a stray carriage return. LF, CRLF (the official files) and CR line ends are
    read alike."""
    if not text or text.isspace():
        raise SkeletonFormatError("empty file")
    try:
        lines = split_lines(text)
    except BadInput as e:
        raise SkeletonFormatError(str(e)) from None
    try:
        num_frames, blocks = _walk(lines)
        values = _joint_values(lines, [s for _, _, s in blocks])
    except SkeletonFormatError as e:
        # Official files end with a newline: a cut in the middle of a line shows up as a
        # short count or joint line, whose message alone would not say "truncated".
        if text.endswith("\n") or str(e).startswith("truncated"):
            raise
        raise SkeletonFormatError(f"truncated? (no final newline) {e}") from None
    return _assemble(num_frames, blocks, values)


def _walk(lines: list[str]) -> tuple[int, list[tuple[int, int, int]]]:
    """The file's structure: (frame count, per body (frame, bodyID, first joint line))."""
    num_frames = _count(lines, 0, "frame count")
    if num_frames == 0:
        raise SkeletonFormatError("zero frames")
    blocks: list[tuple[int, int, int]] = []
    i = 1
    for f in range(num_frames):
        _need(lines, i + 1, f, num_frames)
        num_bodies = _count(lines, i, f"frame {f + 1} body count", MAX_BODIES_PER_FRAME)
        i += 1
        for b in range(num_bodies):
            where = f"frame {f + 1} body {b + 1}"
            _need(lines, i + 2, f, num_frames)
            body_id = _body_id(lines[i], i, where)
            nj = _count(lines, i + 1, f"{where} joint count")
            if nj != NUM_JOINTS:
                raise SkeletonFormatError(
                    f"line {i + 2}: {where} has {nj} joints, expected {NUM_JOINTS}"
                )
            i += 2
            _need(lines, i + nj, f, num_frames)
            blocks.append((f, body_id, i))
            i += nj
    rest = [k for k in range(i, len(lines)) if lines[k].strip()]
    if rest:
        raise SkeletonFormatError(
            f"line {rest[0] + 1}: {len(rest)} unexpected line(s) after the last frame "
            f"(frame or body counts wrong?)"
        )
    if not blocks:
        raise SkeletonFormatError(f"no body in any of the {num_frames} frames")
    return num_frames, blocks


def _need(lines: list[str], end: int, frame: int, num_frames: int) -> None:
    """Truncation check: lines[:end] must exist (a final newline leaves one empty item)."""
    if end > len(lines) or (end == len(lines) and not lines[-1].strip()):
        last = len(lines) - (not lines[-1].strip())
        raise SkeletonFormatError(
            f"truncated: the file ends at line {last}, in frame {frame + 1} of {num_frames}"
        )


def _count(lines: list[str], i: int, what: str, hi: int | None = None) -> int:
    try:
        return parse_int(lines[i], what, 0, hi)
    except BadInput as e:
        raise SkeletonFormatError(f"line {i + 1}: {e}") from None


def _body_id(line: str, i: int, where: str) -> int:
    fields = line.split()
    if len(fields) != INFO_FIELDS:
        raise SkeletonFormatError(
            f"line {i + 1}: {where} info line has {len(fields)} fields, expected {INFO_FIELDS}"
        )
    try:  # 64-bit: a float would merge distinct IDs
        return parse_int(fields[0], f"{where} bodyID", 0, BODY_ID_MAX)
    except BadInput as e:
        raise SkeletonFormatError(f"line {i + 1}: {e}") from None


def _joint_values(lines: list[str], starts: list[int]) -> np.ndarray:
    """All joint lines -> float64 (len(starts), 25, 12) in one C-level conversion."""
    rows = [line for s in starts for line in lines[s : s + NUM_JOINTS]]
    try:
        values = np.loadtxt(rows, dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        values = None
    if values is None or values.shape != (len(rows), JOINT_FIELDS):
        raise SkeletonFormatError(_bad_joint_line(lines, starts))
    values = values.reshape(len(starts), NUM_JOINTS, JOINT_FIELDS)
    # Stored as float32: 1e39 is finite here but inf there.
    bad = not_float32(values[..., XYZ]).any(axis=2).ravel()
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        line = starts[k // NUM_JOINTS] + k % NUM_JOINTS
        raise SkeletonFormatError(
            f"line {line + 1}: joint coordinate {float32_problem(values.reshape(-1, 12)[k, XYZ])}"
        )
    return values


def _bad_joint_line(lines: list[str], starts: list[int]) -> str:
    """The reason for a joint block that np.loadtxt refused (slow path, errors only)."""
    last = max(k for k, line in enumerate(lines) if line.strip())
    for s in starts:
        for k in range(s, s + NUM_JOINTS):
            fields = lines[k].split()
            if len(fields) != JOINT_FIELDS and k == last:
                return f"truncated: the last line ({k + 1}) has {len(fields)} of 12 fields"
            if len(fields) != JOINT_FIELDS:
                return f"line {k + 1}: joint line has {len(fields)} fields, expected 12"
            for v in fields:
                if not is_float(v):  # float() would take `1_0`; numpy does not
                    return f"line {k + 1}: joint field {v[:40]!r} is not a number"
    return "joint lines could not be read as numbers"


def _assemble(num_frames: int, blocks: list[tuple[int, int, int]], values: np.ndarray) -> Skeleton:
    """Per-body (B, T, 25, 3) arrays from the parsed blocks; bodies by bodyID."""
    order: dict[int, int] = {}
    for _, body_id, _ in blocks:
        order.setdefault(body_id, len(order))
    size = len(order) * num_frames * NUM_JOINTS * 3 * 4
    if size > MAX_ASSEMBLED_BYTES:
        raise SkeletonFormatError(
            f"{len(order)} distinct bodyIDs over {num_frames} frames would take "
            f"{size / 2**20:.0f} MB (limit {MAX_ASSEMBLED_BYTES / 2**20:.0f} MB): not a recording"
        )
    joints = np.zeros((len(order), num_frames, NUM_JOINTS, 3), np.float32)
    present = np.zeros((len(order), num_frames), bool)
    body = np.fromiter((order[b] for _, b, _ in blocks), np.intp, len(blocks))
    frame = np.fromiter((f for f, _, _ in blocks), np.intp, len(blocks))
    joints[body, frame] = values[..., XYZ]
    # A listed body whose 25 joints are all zero was not really tracked in that frame.
    present[body, frame] = np.abs(values[..., XYZ]).sum(axis=(1, 2)) > 0
    return Skeleton(num_frames, list(order), joints, present)


# ---------------------------------------------------------------------------------------
# Body selection


def motion_energy(joints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """joints (B, T, V, 3), present bool (B, T) -> (B,): sum over joints and coordinates of
    the standard deviation over the frames where the body is present (0 if never)."""
    out = np.zeros(len(joints))
    for b in range(len(joints)):
        seq = joints[b, present[b]].astype(np.float64)
        if len(seq):
            out[b] = seq.std(axis=0).sum()
    return out


def object_like_fraction(joints: np.ndarray, present: np.ndarray) -> float:
    """joints (T, V, 3), present bool (T,) -> share of present frames in which the body's x
    spread exceeds DENOISE_SPREAD_RATIO x its y spread (people are taller than wide)."""
    seq = joints[present]
    if not len(seq):
        return 0.0
    spread = seq.max(axis=1) - seq.min(axis=1)  # (T', 3)
    return float(np.mean(spread[:, 0] > DENOISE_SPREAD_RATIO * spread[:, 1]))


def select_bodies(
    joints: np.ndarray, present: np.ndarray, max_bodies: int = 2, denoise: bool = False
) -> np.ndarray:
    """joints (B, T, V, 3), present bool (B, T) -> indices of the kept bodies, most
    energetic first (at most `max_bodies`; none if no body is ever present)."""
    candidates = [b for b in range(len(joints)) if present[b].any()]
    if denoise:
        candidates = _denoise(joints, present, candidates)
    energy = motion_energy(joints, present)
    # stable sort: equal energies keep the order of first appearance
    ranked = sorted(candidates, key=lambda b: -energy[b])
    return np.array(ranked[:max_bodies], dtype=np.intp)


def _denoise(joints: np.ndarray, present: np.ndarray, bodies: list[int]) -> list[int]:
    """CTR-GCN/PYSKL rules (module docstring): short bodies, then object-like bodies; never
    the last body."""
    for noisy in (
        lambda b: present[b].sum() <= DENOISE_MIN_FRAMES,
        lambda b: object_like_fraction(joints[b], present[b]) >= DENOISE_SPREAD_FRACTION,
    ):
        for b in list(bodies):
            if len(bodies) > 1 and noisy(b):
                bodies.remove(b)
    return bodies


# ---------------------------------------------------------------------------------------
# The importer


def load_skeleton(
    path: str | Path, max_bodies: int = 2, denoise: bool = False
) -> tuple[np.ndarray, list[int]]:
    """One `.skeleton` file -> (joints float32 (M, T, 25, 3), the M kept bodyIDs), M in
    1..max_bodies, bodies ordered by motion energy. Raises BadInput (bad data, a special
    or oversized file) or OSError (unreadable file)."""
    # latin-1 never fails: stray bytes surface as "not a number" with a line number
    sk = parse_skeleton(read_bytes(path).decode("latin-1"))
    keep = select_bodies(sk.joints, sk.present, max_bodies, denoise)
    if not len(keep):
        raise SkeletonFormatError(
            f"all {len(sk.body_ids)} bodies have all-zero joints in every frame"
        )
    return sk.joints[keep], [sk.body_ids[b] for b in keep]


@dataclass(frozen=True)
class Unit:
    """One work unit of the import: a file and how to read it (picklable)."""

    path: str
    dataset: str = "ntu60"
    denoise: bool = False


def read(unit: Unit) -> list[Sample | Reject]:
    """One file -> [Sample] or [Reject(sample_id, one-line reason)]; never raises for bad
    data (a malformed file, a bad name, an unreadable file)."""
    sid = Path(unit.path).name.removesuffix(".skeleton")
    try:
        name = parse_name(sid)
        if name.action > NUM_CLASSES[unit.dataset]:
            raise SkeletonFormatError(f"action A{name.action:03d} is not a {unit.dataset} class")
        joints, _ = load_skeleton(unit.path, denoise=unit.denoise)
    except BadInput as e:
        return [Reject(sid, str(e))]
    except OSError as e:
        return [Reject(sid, f"cannot read the file ({e.strerror or e})")]
    splits = benchmark_splits(name, unit.dataset)
    return [
        Sample(
            sample_id=sid,
            label=name.action - 1,
            split=splits.pop("xsub"),
            joints=joints,
            subject=name.performer,
            benchmarks=splits,
        )
    ]


MISSING_REASON = "on the official missing-skeleton list"


def read_missing_list(path: str | Path) -> set[str]:
    """The official missing-skeleton list: two header lines, then one sample name a line."""
    lines = Path(path).read_text().splitlines()[2:]
    return {s.strip().removesuffix(".skeleton") for s in lines if s.strip()}


def list_files(src: str | Path) -> list[Path]:
    """Every `*.skeleton` under src (subfolders too), sorted by name, then path."""
    root = Path(src)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder (expected the NTU .skeleton files)")
    return sorted(root.rglob("*.skeleton"), key=lambda p: (p.name, str(p)))


def source(
    src: str | Path,
    dataset: str = "ntu60",
    missing: str | Path | None = None,
    denoise: bool = False,
) -> Source:
    """Describe an NTU import for `mcc.datasets.prepare.run`: one unit per `.skeleton` file
    under src.

    ntu60 skips the NTU120-only files (action > 60; counted in extra["skipped_ntu120_files"],
    so a folder holding all of NTU120 can be imported as NTU60). Files on the `missing` list,
    with a name off the pattern, or duplicated under another folder are rejected up front.
    Raises ValueError (a missing folder) or NothingConverted (no file to import).
    """
    _check_dataset(dataset)
    files = list_files(src)
    if not files:
        raise NothingConverted(f"{src}: no .skeleton files (subfolders searched too)")
    on_list = read_missing_list(missing) if missing is not None else set()
    units: list[Unit] = []
    rejected: list[Reject] = []
    seen: dict[str, Path] = {}
    skipped = 0
    for path in files:
        sid = path.name.removesuffix(".skeleton")
        problem = regular_file_problem(path)
        if problem:  # a FIFO would block the reader, a device never ends
            rejected.append(Reject(sid, f"{path.name}: {problem}"))
            continue
        try:
            name = parse_name(sid)
        except SkeletonFormatError as e:
            rejected.append(Reject(sid, str(e)))
            continue
        if name.action > NUM_CLASSES[dataset]:
            skipped += 1
        elif sid in seen:
            rejected.append(Reject(sid, f"duplicate file {path} (already read {seen[sid]})"))
        elif sid in on_list:
            rejected.append(Reject(sid, MISSING_REASON))
        else:
            seen[sid] = path
            units.append(Unit(str(path), dataset, denoise))
    if not units:
        raise NothingConverted(
            f"{src}: no {dataset} file to import ({len(files)} .skeleton files: "
            f"{skipped} NTU120-only, {len(rejected)} rejected)"
        )
    return Source(
        name=dataset,
        layout=NTU25,
        classes=class_names(dataset),
        source=str(Path(src).resolve()),
        units=units,
        read=read,
        benchmarks=BENCHMARKS[dataset],
        rejected=rejected,
        extra={
            "skipped_ntu120_files": skipped,
            "missing_list": str(Path(missing).resolve()) if missing is not None else None,
            "body_selection": "top-2 motion energy" + (", denoised" if denoise else ""),
        },
    )
