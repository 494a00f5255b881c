"""The paper's Figures 4-6, drawn from the model files of a run folder.

Unlike the tables, these need the trained models: the report loads them from Table 1's runs
(ST-GCN, or the first backbone the plan ran; the lowest seed) and the test split of the
evaluated dataset.

- Fig. 4, an interpolated clip beside its ground truth: the MCC pretraining of the
  "L_triplet + L_NCE + L_Itep (MCC)" row. One test sequence, its clip at speed 2 from frame
  0, the decoder's 32 * l frames against the target of Eq. 3 (docs/design.md), first body, drawn
  as stick figures (front view) at evenly spaced times, the decoded ones over the ground
  truth in grey and on its scale, with the mean squared error; below, the trajectories of
  the joints that move most, decoded against the truth, over every target frame.
- Fig. 5, per-joint response magnitude in the last block: for the encoder fine-tuned from
  scratch and the one fine-tuned from MCC, the L2 norm over channels of the final feature
  map, averaged over time, present bodies and test samples, drawn as circles on the mean
  test pose (area and colour by magnitude, each panel scaled to its own largest joint).
- Fig. 6, t-SNE (scikit-learn's, PCA init) of the test features (pooled backbone features,
  the classifier's input, L2-normalised) of the same two encoders: the first `MAX_CLASSES`
  classes, at most `PER_CLASS` samples each; each panel states its trustworthiness (how well
  the map keeps the features' nearest neighbours; 1 is perfect).

They are drawn with matplotlib (ablations/charts.py; the `report` extra) and returned as
SVG text; `model_figures` returns the figures it could draw and, for each one it could not,
the reason (a missing run, a model without a decoder, matplotlib not installed).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ablations import charts
from ablations.cells import EVALUATED, Cell, Plan
from ablations.run import checkpoint_of
from mcc.checkpoint import load_checkpoint, load_module
from mcc.config import DataConfig, PretrainConfig, from_dict
from mcc.data import load_splits
from mcc.features import batch_inputs
from mcc.layouts import Layout, layout_from_dict
from mcc.model import MCC
from mcc.pretrained import encoder_of
from mcc.sampling import clip_indices, interpolation_target, pad_bodies
from mcc.train import to_model_layout

MCC_ROW = "L_triplet + L_NCE + L_Itep (MCC)"
SCRATCH_ROW = "w/o pre-training"
MAX_CLASSES = 10
PER_CLASS = 30
FIG4_SPEED = 2
FIG4_SHOWN = 8  # frames drawn per row


def tsne(x: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> tuple[np.ndarray, float]:
    """(N, D) rows -> ((N, 2) t-SNE map, its trustworthiness over 10 neighbours).
    scikit-learn's Barnes-Hut t-SNE with PCA init: on this report's features it keeps
    neighbours better than an exact t-SNE did, and flings no points far from the rest
    (docs/findings.md, "Notes behind smaller choices")."""
    from sklearn.manifold import TSNE, trustworthiness

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {n}")
    y = TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), init="pca",
             learning_rate="auto", random_state=seed).fit_transform(x)  # fmt: skip
    return y, float(trustworthiness(x, y, n_neighbors=min(10, (n - 1) // 2)))


# ---- which runs ---------------------------------------------------------------------------


def _first_cell(plan: Plan, row: str) -> Cell | None:
    backbone = "stgcn" if "stgcn" in plan.backbones else plan.backbones[0]
    cells = [c for c in plan.cells if c.row == row and c.backbone == backbone]
    return min(cells, key=lambda c: c.seed) if cells else None


def _finetuned_checkpoint(cell: Cell, runs: Path) -> Path | None:
    folder = runs / cell.evaluation.dir
    ok = (folder / "result.json").exists() and (folder / "checkpoint.pt").exists()
    return folder / "checkpoint.pt" if ok else None


# ---- the figures ----------------------------------------------------------------------------


def _test_splits(data_path: str, data_cfg: dict):
    """The dataset as a run saw it (its normalisation and benchmark), loaded once per report:
    every figure reads the same test split."""
    return _load(data_path, data_cfg.get("normalize", "center"), data_cfg.get("benchmark", ""))


@lru_cache(maxsize=2)
def _load(path: str, normalize: str, benchmark: str):
    return load_splits(DataConfig(path=path, normalize=normalize, benchmark=benchmark))


def _front_view(frames: np.ndarray, layout: Layout) -> np.ndarray:
    """(T, V, C) -> (T, V, 2) drawing coordinates, y up: x and y of a 3-D layout; a 2-D
    (image) layout's y points down, so it is flipped."""
    xy = frames[..., list(layout.coord_channels)[:2]].astype(np.float64)
    if len(layout.coord_channels) == 2:
        xy[..., 1] = -xy[..., 1]
    return xy


def interpolation_figure(checkpoint: Path, data_path: str) -> str:
    """Fig. 4 from an MCC pretraining checkpoint (needs its decoder: loss.interp > 0)."""
    state = load_checkpoint(checkpoint)
    cfg = from_dict(PretrainConfig, state["config"])
    if cfg.pretext != "mcc" or cfg.loss.interp <= 0:
        raise ValueError(f"{checkpoint} has no interpolation decoder (loss.interp=0)")
    layout = layout_from_dict(state["layout"])
    model = MCC(cfg, layout)
    load_module(model, state["model"], f"model of {checkpoint}")
    model.eval()
    splits = _test_splits(data_path, state["config"]["data"])
    clen, rate = cfg.sampling.clip_len, cfg.loss.interp_rate
    seq = next((s.joints for s in splits.test if s.joints.shape[1] >= clen * FIG4_SPEED),
               max((s.joints for s in splits.test), key=lambda j: j.shape[1]))  # fmt: skip
    clip = seq[:, clip_indices(seq.shape[1], 0, FIG4_SPEED, clen)]
    if cfg.loss.interp_target == "reconstruct":
        target = clip
    else:
        target = interpolation_target(seq, 0, FIG4_SPEED, rate, clen, cfg.loss.slow_rule)
    x = torch.from_numpy(
        np.ascontiguousarray(to_model_layout(pad_bodies(clip, splits.manifest.max_bodies)))
    )[None]
    with torch.no_grad():
        _, pred = model(x, n_decode=1)
    pred = pred[0, :, :, :, 0].permute(1, 2, 0).numpy()  # (T', V, C_coord), first body
    truth = target[0][..., list(layout.coord_channels)]
    mse = float(np.mean(np.sum((pred - truth) ** 2, axis=-1)))
    shown = np.linspace(0, truth.shape[0] - 1, FIG4_SHOWN).round().astype(int)
    inp = clip[0][np.minimum(shown * clen // truth.shape[0], clen - 1)]
    decoded = _front_view(_pad_coords(pred, layout), layout)  # every target frame
    true_xy = _front_view(target[0], layout)
    rows = [
        (f"input clip (speed {FIG4_SPEED})", _front_view(inp, layout)),
        (f"decoded ({rate}x the frames), truth in grey", decoded[shown]),
        ("ground truth", true_xy[shown]),
    ]
    times = ", ".join(map(str, shown))
    spread = _spread(decoded) / max(_spread(true_xy), 1e-12)
    title = (f"Fig. 4: interpolation of a test clip (MSE {mse:.4f}; target frames {times}; "
             f"decoded poses span {spread:.0%} of the true ones)")  # fmt: skip
    return charts.skeleton_rows(title, rows, layout.edges, "fig4-interpolation", behind={1: 2},
                                trajectories=(decoded, true_xy))  # fmt: skip


def _spread(frames: np.ndarray) -> float:
    """The mean distance of the joints from their pose's centre, over frames."""
    return float(np.mean(np.linalg.norm(frames - frames.mean(axis=1, keepdims=True), axis=-1)))


def _pad_coords(coords: np.ndarray, layout: Layout) -> np.ndarray:
    """(T, V, C_coord) -> (T, V, C) with the coordinates in the layout's coordinate channels."""
    c = max(layout.coord_channels) + 1
    out = np.zeros((*coords.shape[:2], c), dtype=coords.dtype)
    out[..., list(layout.coord_channels)] = coords
    return out


def _test_subset(samples, max_classes: int, per_class: int):
    labels = sorted({s.label for s in samples})[:max_classes]
    picked = []
    for c in labels:
        picked += [s for s in samples if s.label == c][:per_class]
    return picked


def feature_figures(checkpoints: dict[str, Path], data_path: str) -> tuple[str, str]:
    """Figs. 5 and 6 for encoders fine-tuned from different initialisations ({name: run
    checkpoint}), on the test split."""
    panels_tsne, panels_joint = [], []
    layout = None
    for name, ckpt in checkpoints.items():
        state = load_checkpoint(ckpt)
        encoder, _ = encoder_of(state)
        encoder.eval()
        cfg = state["config"]
        splits = _test_splits(data_path, cfg["data"])
        layout = splits.manifest.layout
        samples = _test_subset(splits.test, MAX_CLASSES, PER_CLASS)
        frames = cfg.get("frames", 64)
        feats, norms, weight = [], np.zeros(layout.num_joints), 0.0
        with torch.no_grad():
            for i in range(0, len(samples), 64):
                x = batch_inputs(samples[i : i + 64], frames, splits.manifest.max_bodies)
                fmap = encoder.forward_features(x)  # (N, M, C, T', V)
                present = encoder.present_bodies(x)
                feats.append(encoder.pool(fmap, present))
                mag = fmap.norm(dim=2).mean(dim=2)  # (N, M, V)
                norms += (mag * present[..., None]).sum(dim=(0, 1)).numpy()
                weight += float(present.sum())
        f = torch.cat(feats).numpy()
        y = np.array([s.label for s in samples])
        xy, trust = tsne(f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12))
        panels_tsne.append((f"{name} (trustworthiness {trust:.3f})", xy, y))
        panels_joint.append((name, norms / max(weight, 1.0)))
    pose = np.mean([s.joints[0].mean(axis=0) for s in samples], axis=0)  # (V, C)
    joint_svg = charts.joint_response(
        "Fig. 5: per-joint response magnitude of the last block (test split)",
        _front_view(pose[None], layout)[0],
        layout.edges,
        panels_joint,
        "fig5-joint-response",
    )
    names = [f"{i}: {c[:30]}" for i, c in enumerate(splits.manifest.classes)]
    tsne_svg = charts.tsne_panels(
        f"Fig. 6: t-SNE of test features (first {MAX_CLASSES} classes, at most {PER_CLASS} "
        f"samples each; colour = class)",
        panels_tsne,
        names,
        "fig6-tsne",
    )
    return joint_svg, tsne_svg


def model_figures(plan: Plan, runs: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Table 1's plan -> ([(stem, svg)], [why a figure is missing])."""
    data_path = plan.datasets.get(EVALUATED, {}).get("path")
    figs, missing = [], []
    if not charts.available():
        return [], [f"Figs. 4-6: drawn with matplotlib and scikit-learn: {charts.MISSING_EXTRA}"]
    mcc_cell, scratch_cell = _first_cell(plan, MCC_ROW), _first_cell(plan, SCRATCH_ROW)
    pre = checkpoint_of(mcc_cell, runs)[0] if mcc_cell and mcc_cell.pretrain else None
    if pre is None or data_path is None:
        missing.append("Fig. 4 (interpolated clip): Table 1's MCC pretraining has no checkpoint")
    else:
        try:
            figs.append(("fig4-interpolation", interpolation_figure(Path(pre), data_path)))
        except (ValueError, OSError) as e:
            missing.append(f"Fig. 4 (interpolated clip): {e}")
    tuned = {
        "fine-tuned from scratch": _finetuned_checkpoint(scratch_cell, runs) if scratch_cell
        else None,
        "fine-tuned from MCC": _finetuned_checkpoint(mcc_cell, runs) if mcc_cell else None,
    }  # fmt: skip
    absent = [k for k, v in tuned.items() if v is None]
    if absent or data_path is None:
        why = f"Table 1 has no {' or '.join(absent)} run" if absent else "no dataset"
        missing += [f"Fig. 5 (per-joint response): {why}", f"Fig. 6 (t-SNE): {why}"]
    else:
        joint_svg, tsne_svg = feature_figures(tuned, data_path)
        figs += [("fig5-joint-response", joint_svg), ("fig6-tsne", tsne_svg)]
    return figs, missing
