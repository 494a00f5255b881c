"""Generic `.npz` importer (format in docs/data.md and docs/design.md), through the ShardWriter.

joints float32 (N, M, T, V, C) or (N, T, V, C); labels int (N,); optional lengths (N,),
subjects (N,), split str (N,) of train/test, sample_ids str (N,), class_names str (K,).
Without class_names the classes are 0..K-1, K the first class index no sample uses: a
stray label (99 among 0..5) is rejected instead of creating 94 empty classes; labels that
do not start at 0 are an error.

The archive is read defensively (mcc.untrusted's rules): nothing is unpickled, every
member's declared shape and dtype (its .npy header) are checked against the bytes the zip
holds and against size limits before anything is allocated, and `joints` is streamed one
sequence at a time, so memory stays bounded whatever the file declares. A damaged archive
(truncated, bad CRC, a zip bomb) is one DataImportError and leaves no shard behind; a bad
sequence (label out of range or not an integer, a duplicate sample_id, a value not finite
as float32, ...) is a rejected sample with a one-line reason.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcc import files
from mcc.datasets.prepare import one_line
from mcc.layouts import get_layout
from mcc.shards import Manifest, Sample, ShardWriter
from mcc.untrusted import BadInput, float32_problem, open_regular

MAX_SAMPLES = 10_000_000  # N: NTU120 has 114k sequences, Kinetics-400 ~260k
MAX_META_BYTES = 256 * 2**20  # every array but joints is read whole
MAX_SEQUENCE_BYTES = 256 * 2**20  # one sequence of joints (300 x 2 x 25 x 3 float64: 0.4 MB)
OPTIONAL = ("lengths", "subjects", "split", "sample_ids", "class_names")
INT32 = (-(2**31), 2**31 - 1)  # the shards' label and subject columns are int32


class DataImportError(ValueError):
    """The input file cannot be imported at all (the message says why)."""


@dataclass(frozen=True)
class Member:
    """One `.npy` array in the archive, as its header declares it."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int  # bytes of magic + header before the data

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def import_npz(
    src: str | Path, layout_name: str, out: str | Path, name: str | None = None
) -> Manifest:
    src = Path(src)
    layout = get_layout(layout_name)
    try:
        f = open_regular(src, limit=None)
    except BadInput as e:
        raise DataImportError(f"{src}: {e}") from None
    written: list[str] = []
    try:
        with f, zipfile.ZipFile(f) as zf:
            return _import(zf, src, layout, out, name, written)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
            NotImplementedError, KeyError, OverflowError) as e:  # fmt: skip
        for shard in written:  # a half-read archive leaves nothing behind
            files.remove(files.join(out, shard))
        if isinstance(e, DataImportError):
            raise
        raise DataImportError(
            f"{src}: not a readable .npz, damaged or truncated ({type(e).__name__}: "
            f"{one_line(e)[:160]})"
        ) from None


def _import(zf: zipfile.ZipFile, src: Path, layout, out, name, written: list) -> Manifest:
    members = _members(zf, src)
    for key in ("joints", "labels"):
        if key not in members:
            raise DataImportError(f"{src}: missing array {key!r} (has {sorted(members)})")
    jm = members["joints"]
    shape = jm.shape if len(jm.shape) != 4 else (jm.shape[0], 1, *jm.shape[1:])
    if len(shape) != 5:
        raise DataImportError(
            f"{src}: joints must be (N, M, T, V, C) or (N, T, V, C), got {jm.shape}"
        )
    n, m, t, v, c = shape
    if v != layout.num_joints or c != layout.num_channels:
        raise DataImportError(
            f"{src}: joints have {v} joints x {c} channels; layout {layout.name!r} has "
            f"{layout.num_joints} x {layout.num_channels}"
        )
    if 0 in (n, m, t):
        raise DataImportError(f"{src}: joints {jm.shape} hold no data (a zero dimension)")
    if n > MAX_SAMPLES:
        raise DataImportError(f"{src}: joints declare {n} sequences, over {MAX_SAMPLES}")
    if jm.dtype.kind not in "fiu":
        raise DataImportError(f"{src}: joints must be numbers, got dtype {jm.dtype}")
    if jm.fortran:
        raise DataImportError(
            f"{src}: joints are stored in Fortran order; save np.ascontiguousarray(joints)"
        )
    per_sequence = m * t * v * c * jm.dtype.itemsize
    if per_sequence > MAX_SEQUENCE_BYTES:
        raise DataImportError(f"{src}: one sequence of joints {shape[1:]} {jm.dtype} is "
                              f"{per_sequence / 2**20:.0f} MB, over the limit")  # fmt: skip
    if members["labels"].shape != (n,):
        raise DataImportError(
            f"{src}: labels shape {members['labels'].shape} does not match {n} sequences"
        )
    for k in ("lengths", "subjects", "split", "sample_ids"):
        if k in members and members[k].shape != (n,):
            raise DataImportError(
                f"{src}: {k} shape {members[k].shape} does not match {n} sequences"
            )
    arrays = {k: _read_whole(zf, members[k], src) for k in ("labels", *OPTIONAL) if k in members}
    labels = _labels(arrays["labels"], src)
    if "class_names" in arrays:
        if arrays["class_names"].ndim != 1:
            raise DataImportError(
                f"{src}: class_names must be 1-D, got {arrays['class_names'].shape}"
            )
        classes = [_text(x) for x in arrays["class_names"]]
        implicit = ""
    else:
        classes, implicit = _implicit_classes(labels, src)
    ids = (
        [_text(x) for x in arrays["sample_ids"]]
        if "sample_ids" in arrays
        else [f"{src.stem}_{i:06d}" for i in range(n)]
    )
    writer = ShardWriter(
        out, name=name or src.stem, layout=layout, classes=classes, source=str(src.resolve())
    )
    seen: dict[str, int] = {}
    for i, seq in enumerate(_sequences(zf, jm, (m, t, v, c))):
        sid = ids[i]
        if sid in seen:
            writer.reject(sid, f"duplicate sample_id: sequence {i} has the id of sequence "
                               f"{seen[sid]}, which was imported")  # fmt: skip
            continue
        seen[sid] = i
        length = _integer(arrays["lengths"][i], "length") if "lengths" in arrays else t
        split = _text(arrays["split"][i]) if "split" in arrays else "train"
        subject = _integer(arrays["subjects"][i], "subject") if "subjects" in arrays else -1
        reason = _problem(seq, labels[i], classes, implicit, split, length, t, subject)
        if reason:
            writer.reject(sid, reason)
            continue
        seq = seq[:, :length].astype(np.float32)
        keep = np.abs(seq).sum(axis=(1, 2, 3)) > 0  # drop bodies that are all zero
        keep[0] = True
        writer.add(Sample(sid, int(labels[i]), split, seq[keep], int(subject)))
        written[:] = writer.manifest.shards
    writer.flush()
    written[:] = writer.manifest.shards
    return writer.close()


# --------------------------------------------------------------------------- archive


def _members(zf: zipfile.ZipFile, src: Path) -> dict[str, Member]:
    """Every `.npy` member's header, checked against what the zip holds: the data a header
    declares must be exactly the member's size (a crafted header cannot make us allocate
    more than the archive really contains), and no member may hold Python objects."""
    out: dict[str, Member] = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        key = info.filename[: -len(".npy")]
        if key in out:
            raise DataImportError(f"{src}: array {key!r} appears twice in the archive")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise DataImportError(f"{src}: {info.filename}: unknown .npy version {version}")
            member = Member(info, tuple(shape), bool(fortran), dtype, f.tell())
        if dtype.hasobject:
            raise DataImportError(
                f"{src}: {info.filename} holds Python objects (pickles), which are not read"
            )
        if member.offset + member.nbytes != info.file_size:
            raise DataImportError(
                f"{src}: {info.filename} declares {member.shape} {dtype} ({member.nbytes} "
                f"bytes) but the archive holds {info.file_size - member.offset} bytes of data: "
                f"damaged or crafted"
            )
        out[key] = member
    return out


def _read_whole(zf: zipfile.ZipFile, member: Member, src: Path) -> np.ndarray:
    """A small array (not joints), read to the end of its member (which checks its CRC)."""
    if member.nbytes > MAX_META_BYTES:
        raise DataImportError(
            f"{src}: {member.info.filename} {member.shape} {member.dtype} is "
            f"{member.nbytes / 2**20:.0f} MB, over the {MAX_META_BYTES / 2**20:.0f} MB limit"
        )
    with zf.open(member.info) as f:
        f.read(member.offset)
        data = f.read()
    order = "F" if member.fortran else "C"
    return np.frombuffer(data, member.dtype).reshape(member.shape, order=order)


def _sequences(zf: zipfile.ZipFile, member: Member, shape: tuple[int, ...]):
    """The joints, one sequence (M, T, V, C) at a time, straight from the zip stream."""
    size = int(np.prod(shape)) * member.dtype.itemsize
    with zf.open(member.info) as f:
        f.read(member.offset)
        for _ in range(member.shape[0]):
            data = f.read(size)
            if len(data) != size:
                raise EOFError("joints end early")
            yield np.frombuffer(data, member.dtype).reshape(shape)
        if f.read(1):  # reading to the end checks the CRC
            raise ValueError("joints hold more data than declared")


# --------------------------------------------------------------------------- values


def _labels(labels: np.ndarray, src: Path) -> np.ndarray:
    """Class indices as an object array of int, or of a str reason for a label that is not
    an integer (a float label that is not whole, NaN). Labels of a non-numeric dtype (class
    names as strings, bools) are an error for the whole file."""
    if labels.dtype.kind not in "iuf":
        raise DataImportError(
            f"{src}: labels must be integer class indices, got dtype {labels.dtype}"
            + (
                "; give class names as class_names and the labels as their indices"
                if labels.dtype.kind in "US"
                else ""
            )  # fmt: skip
        )
    out = np.empty(len(labels), dtype=object)
    for i, x in enumerate(labels.tolist()):
        out[i] = _integer(x, "label")
    return out


def _integer(x, what: str) -> int | str:
    """x as an int, or a one-line reason why it is not one (a float that is not whole,
    NaN, inf, a string)."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, int | float):
        return f"{what} {x!r} is not an integer"
    if isinstance(x, float):
        if not np.isfinite(x) or x != int(x):
            return f"{what} {x!r} is not an integer"
        x = int(x)
    return x


def _implicit_classes(labels: np.ndarray, src: Path) -> tuple[list[str], str]:
    """Without class_names: classes 0..K-1, K the first index no label uses, and the note
    for a label beyond them."""
    used = {x for x in labels if isinstance(x, int) and x >= 0}
    if 0 not in used:
        raise DataImportError(
            f"{src}: no sequence has label 0 (labels are 0-based class indices); subtract 1 "
            f"from 1-based labels, or give class_names"
        )
    k = 0
    while k in used:
        k += 1
    note = (f"without class_names the classes are 0..{k - 1} (no sequence has label {k}); "
            f"give class_names to declare more")  # fmt: skip
    return [f"class{i}" for i in range(k)], note


def _text(x) -> str:
    if isinstance(x, bytes | np.bytes_):
        return x.decode("utf-8", "replace")
    return str(x)


def _problem(
    seq: np.ndarray,
    label: int | str,
    classes: list[str],
    implicit: str,
    split: str,
    length: int | str,
    t: int,
    subject: int | str,
) -> str | None:
    for x in (label, length, subject):
        if isinstance(x, str):
            return x
    if not 1 <= length <= t:
        return f"length {length} outside 1..{t}"
    if not 0 <= label < len(classes):
        return f"label {label} outside 0..{len(classes) - 1}" + (
            f": {implicit}" if implicit else ""
        )
    if split not in ("train", "test"):
        return f"split {split[:40]!r} is not train or test"
    if not INT32[0] <= subject <= INT32[1]:
        return f"subject {subject} outside the int32 range"
    problem = float32_problem(seq[:, :length])
    if problem:
        return problem
    if not np.abs(seq[:, :length]).any():
        return "all joints are zero"
    return None
