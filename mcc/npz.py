"""Generic `.npz` importer (format in design.md), through the shared ShardWriter.

joints float32 (N, M, T, V, C) or (N, T, V, C); labels int (N,); optional lengths (N,),
subjects (N,), split str (N,) of train/test, sample_ids str (N,), class_names str (K,).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mcc.layouts import get_layout
from mcc.shards import Manifest, Sample, ShardWriter


class DataImportError(ValueError):
    """The input file cannot be imported at all (the message says why)."""


def import_npz(
    src: str | Path, layout_name: str, out: str | Path, name: str | None = None
) -> Manifest:
    src = Path(src)
    layout = get_layout(layout_name)
    try:
        data = np.load(src, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataImportError(f"{src}: not a readable .npz ({e})") from None
    for key in ("joints", "labels"):
        if key not in data.files:
            raise DataImportError(f"{src}: missing array {key!r} (has {data.files})")
    joints, labels = data["joints"], data["labels"]
    if joints.ndim == 4:
        joints = joints[:, None]
    if joints.ndim != 5:
        raise DataImportError(
            f"{src}: joints must be (N, M, T, V, C) or (N, T, V, C), got {joints.shape}"
        )
    n, _, t, v, c = joints.shape
    if v != layout.num_joints or c != layout.num_channels:
        raise DataImportError(
            f"{src}: joints have {v} joints x {c} channels; layout {layout.name!r} has "
            f"{layout.num_joints} x {layout.num_channels}"
        )
    if labels.shape != (n,):
        raise DataImportError(f"{src}: labels shape {labels.shape} does not match {n} sequences")
    opt = {
        k: data[k]
        for k in ("lengths", "subjects", "split", "sample_ids", "class_names")
        if k in data.files
    }
    for k in ("lengths", "subjects", "split", "sample_ids"):
        if k in opt and opt[k].shape != (n,):
            raise DataImportError(f"{src}: {k} shape {opt[k].shape} does not match {n} sequences")
    num_classes = int(labels.max()) + 1 if n else 0
    classes = (
        [str(x) for x in opt["class_names"]]
        if "class_names" in opt
        else [f"class{i}" for i in range(num_classes)]
    )
    writer = ShardWriter(
        out, name=name or src.stem, layout=layout, classes=classes, source=str(src.resolve())
    )
    for i in range(n):
        sid = str(opt["sample_ids"][i]) if "sample_ids" in opt else f"{src.stem}_{i:06d}"
        length = int(opt["lengths"][i]) if "lengths" in opt else t
        split = str(opt["split"][i]) if "split" in opt else "train"
        seq = joints[i, :, :length].astype(np.float32)
        reason = _problem(seq, int(labels[i]), len(classes), split, length, t)
        if reason:
            writer.reject(sid, reason)
            continue
        keep = np.abs(seq).sum(axis=(1, 2, 3)) > 0  # drop bodies that are all zero
        keep[0] = True
        subject = int(opt["subjects"][i]) if "subjects" in opt else -1
        writer.add(Sample(sid, int(labels[i]), split, seq[keep], subject))
    return writer.close()


def _problem(
    seq: np.ndarray, label: int, num_classes: int, split: str, length: int, t: int
) -> str | None:
    if not 1 <= length <= t:
        return f"length {length} outside 1..{t}"
    if not 0 <= label < num_classes:
        return f"label {label} outside 0..{num_classes - 1}"
    if split not in ("train", "test"):
        return f"split {split!r} is not train or test"
    if not np.isfinite(seq).all():
        return "non-finite coordinates (NaN or inf)"
    if not np.abs(seq).any():
        return "all joints are zero"
    return None
