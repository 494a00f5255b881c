"""Test-set class scores of an evaluation run (scores.npz), and late fusion of several runs by
summing them (2s-AGCN's joint + bone streams, Shi et al. 2019)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from mcc import files
from mcc.knn import accuracy
from mcc.runs import RunDir

SCORES = "scores.npz"


def save_scores(folder: Path, scores: torch.Tensor, labels: torch.Tensor, ids: list[str]):
    """`scores.npz` in a run folder: scores (N, classes) float32, labels (N,), sample_ids
    (N,) of the test split, in the same order."""
    np.savez(
        folder / SCORES,
        scores=scores.detach().float().numpy(),
        labels=labels.numpy(),
        sample_ids=np.array(ids, dtype=str),
    )


def load_scores(folder: str | Path) -> dict[str, np.ndarray]:
    path = files.join(folder, SCORES)
    try:
        data = files.read_bytes(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist: fuse needs evaluation run folders (python -m mcc "
            f"evaluate ...), which save their test-set class scores there"
        ) from None
    with np.load(io.BytesIO(data)) as z:
        return {k: z[k] for k in ("scores", "labels", "sample_ids")}


def fuse(run_dirs: list[str | Path], out: str | Path) -> dict:
    """Late fusion of evaluation runs on the same test set (2s-AGCN's two streams, or any
    models): sum their class scores (the released 2s-AGCN's ensemble.py sums raw scores),
    then top-1 / top-5. The runs' sample ids must agree (as a set; the first run's order is
    used). Writes `out` with config.json, result.json and the fused scores.npz."""
    if len(run_dirs) < 2:
        raise ValueError(f"fuse needs at least two evaluation runs, got {len(run_dirs)}")
    runs = [load_scores(d) for d in run_dirs]
    first = runs[0]
    ids = [str(i) for i in first["sample_ids"]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{run_dirs[0]}: duplicate sample ids in {SCORES}")
    total = first["scores"].astype(np.float64)
    for d, r in zip(run_dirs[1:], runs[1:]):
        pos = {str(i): k for k, i in enumerate(r["sample_ids"])}
        missing = [i for i in ids if i not in pos]
        extra = len(pos) - (len(ids) - len(missing))
        if missing or extra or len(pos) != len(r["sample_ids"]):
            raise ValueError(
                f"cannot fuse {run_dirs[0]} and {d}: their test sample ids differ "
                f"({len(missing)} of {run_dirs[0]}'s missing from {d}, e.g. "
                f"{missing[:3]}; {extra} extra in {d}): evaluate both on the same dataset"
            )
        order = np.array([pos[i] for i in ids])
        if r["scores"].shape[1] != total.shape[1]:
            raise ValueError(
                f"cannot fuse {run_dirs[0]} ({total.shape[1]} classes) and {d} "
                f"({r['scores'].shape[1]} classes)"
            )
        if not np.array_equal(r["labels"][order], first["labels"]):
            raise ValueError(f"cannot fuse {run_dirs[0]} and {d}: same ids, different labels")
        total += r["scores"][order]
    scores, labels = torch.from_numpy(total).float(), torch.from_numpy(first["labels"]).long()
    members = []
    for d, r in zip(run_dirs, runs):
        info = _result_of(d)
        top1 = 100.0 * float((r["scores"].argmax(1) == r["labels"]).mean())
        members.append({"run": str(d), "protocol": info.get("protocol"), "top1": top1,
                        "dataset": info.get("dataset")})  # fmt: skip
    datasets = {m["dataset"] for m in members if m["dataset"] is not None}
    if len(datasets) > 1:
        raise ValueError(f"cannot fuse runs on different datasets: {sorted(datasets)}")
    run = RunDir(out)
    run.write_config({"kind": "fuse", "runs": [str(d) for d in run_dirs]})
    save_scores(run.path, scores, labels, ids)
    result = {
        "kind": "fuse",
        "dataset": datasets.pop() if datasets else None,
        "runs": members,
        "test_samples": len(ids),
        **accuracy(scores, labels, scores.shape[1]),
    }
    return run.write_result(result, _result_of(run_dirs[0]).get("seed", 0))


def _result_of(folder: str | Path) -> dict:
    try:
        return json.loads(files.read_bytes(files.join(folder, "result.json")))
    except FileNotFoundError:
        return {}
