"""What running a table costs, for `python -m ablations list`: from the wall times of runs
already finished in a results folder when it has some, else from seconds per sample and
epoch measured on this project's machine.

The measured rates (1 thread; a shared 2-core AMD EPYC, load average 6-8 from other jobs,
torch 2.13 CPU). `python -m mcc pretrain` / `evaluate --protocol finetune`, 1 epoch, on a
96-sample synthetic set (`python -m mcc prepare synthetic --set train_per_class=8
--set test_per_class=4`), e.g.

    python -m mcc pretrain --data D --out O --preset tiny --set model.backbone=stgcn \\
        --set model.width=0.125 --set optim.epochs=1 --set loss.queue_size=64 --set threads=1
    python -m mcc evaluate --data D --protocol finetune --out O --preset tiny \\
        --set model.width=0.125 --set optim.epochs=1 --set frames=64 --set threads=1

gave each epoch's `epoch_time_s` / 96 below. In a real ablation run (`python -m ablations
run table1 --preset smoke --backbones stgcn`, 720 synthetic training samples) a
pretraining epoch inside its Ray trial took 2.1x the plain process's time per sample
(25.2 s for 405 samples: Ray Data's sampling shares the 2 cores), and each cell spent about
45 s more on Ray's trial and Train start, the dataset read and checkpoints (72 s per cell
over 5 cells); evaluations ran at the plain rate (6.9 s per fine-tuning epoch of 720 samples
at 32 frames) plus the data load and the passes over the test split and for batch norm.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ablations.cells import expand, placeholder_datasets, pretrain_base
from ablations.presets import Preset
from mcc.config import ConfigError, EvalConfig, PretrainConfig, apply_overrides, from_dict

MACHINE = "a shared 2-core AMD EPYC, 1 thread"
# seconds per training sample and epoch: (backbone, width) -> (pretraining, fine-tuning at
# 64 frames). Fine-tuning is taken as linear in the frames: at width 1.0 it was (26.2 s
# against 51.8 s per epoch at 32 and 64 frames); at width 0.125 short clips cost relatively
# more (ST-GCN 0.95 s against 1.27 s), so there it under-estimates them a little.
RATES = {
    ("stgcn", 0.125): (0.029, 0.013),
    ("agcn", 0.125): (0.040, 0.030),
    ("asgcn", 0.125): (0.200, 0.074),
    ("stgcn", 1.0): (1.01, 0.54),
}
RAY_EPOCH_FACTOR = 2.1  # a pretraining epoch in a Ray trial / in a plain process
RAY_CELL_S = 45.0  # per pretraining cell: trial and Train start, data read, checkpoints
EVAL_LOAD_S = 2.0  # per evaluation: loading the dataset
FORWARD = 1 / 3  # a forward pass (kNN, batch-norm statistics, test) / forward + backward
DEFAULT_SAMPLES = (720, 300)  # the synthetic default (mcc.datasets.synthetic.SyntheticConfig)


def rate(backbone: str, width: float) -> tuple[float, float]:
    """(pretraining, fine-tuning at 64 frames) seconds per sample and epoch: measured at
    widths 0.125 and 1.0 (ST-GCN), power-law between and beyond them; other backbones keep
    their measured ratio to ST-GCN at width 0.125."""
    lo, hi = RATES[("stgcn", 0.125)], RATES[("stgcn", 1.0)]
    exps = [math.log(h / max(v, 1e-9)) / math.log(8) for v, h in zip(lo, hi)]
    own = RATES.get((backbone, 0.125), lo)
    return tuple(o * (width / 0.125) ** e for o, e in zip(own, exps))


@dataclass
class Estimate:
    pretrainings: int
    evaluations: int
    seconds: float
    basis: str


def dataset_samples(data: str | None) -> tuple[tuple[int, int], str]:
    """(train, test) sample counts of `data` (a prepared folder), else of data/synthetic when
    prepared, else the synthetic default's; and where they came from."""
    for path in ([data] if data else []) + ["data/synthetic"]:
        f = Path(path) / "dataset.json"
        if f.exists():
            counts = json.loads(f.read_text()).get("counts", {})
            tr, te = (counts.get(s, {}).get("samples", 0) for s in ("train", "test"))
            return (tr, te), f"{tr} training samples ({path})"
    if data:
        raise FileNotFoundError(f"--data {data} is not a prepared dataset (no dataset.json)")
    return DEFAULT_SAMPLES, f"{DEFAULT_SAMPLES[0]} training samples (the synthetic default)"


def finished(runs: Path) -> dict[str, tuple[float, float, int]]:
    """What a results folder has finished, per kind ("pretrain", "eval"): (the wall times
    added up, what the rates predict for the same runs, how many). A pretraining's time is
    its Train run's, read from its trial folder (Ray's trial start not included)."""
    out = {}
    kinds = (("pretrain", "pretrain/*/trials/*/result.json", PretrainConfig),
             ("eval", "eval/**/result.json", EvalConfig))  # fmt: skip
    for kind, pattern, cls in kinds:
        took = predicted = 0.0
        n = 0
        for f in runs.glob(pattern):
            try:
                res = json.loads(f.read_text())
                saved = json.loads((f.parent / "config.json").read_text())
                saved.pop("checkpoint", None)  # an evaluation's record of its start
                cfg = from_dict(cls, saved)
            except (OSError, ValueError, TypeError, KeyError, ConfigError):
                continue
            wall, train = res.get("wall_time_s"), res.get("train_samples")
            if not (isinstance(wall, (int, float)) and wall > 0 and isinstance(train, int)):
                continue
            if kind == "pretrain":
                predicted += pretraining_seconds(cfg, train / (1 - cfg.data.val_fraction))
            else:
                total = train / cfg.label_fraction if cfg.protocol == "semi" else train
                predicted += evaluation_seconds(cfg, (total, res.get("test_samples") or 0))
            took += wall
            n += 1
        if n:
            out[kind] = (took, predicted, n)
    return out


def estimate(
    tables: list, preset: Preset, samples: tuple[int, int], runs: Path | None = None
) -> Estimate:
    """Pretrainings and evaluations of `tables` run into one folder (shared runs once), and
    their seconds by the measured rates on `samples` (train, test) per dataset; when `runs`
    has finished runs of both kinds, scaled by what those took against what the rates
    predict for them (the machine, its load, the data as they were)."""
    pre, ev = {}, {}
    for t in tables:
        datasets = placeholder_datasets(t)
        plan = expand(t, preset, datasets)
        ds = {d.key: d for d in datasets.values()}
        for p in plan.pretrainings():
            if (p.dataset, p.name) not in pre:
                cfg = apply_overrides(pretrain_base(preset, ds[p.dataset], {}), p.params)
                pre[(p.dataset, p.name)] = pretraining_seconds(cfg, samples[0])
        for e in plan.evaluations():
            ev.setdefault(e.dir, evaluation_seconds(e.config(), samples))
    seen = finished(runs) if runs is not None and runs.is_dir() else {}
    if "pretrain" in seen and "eval" in seen:
        (tp, pp, n_p), (te, pe, n_e) = seen["pretrain"], seen["eval"]
        fp, fe = tp / pp, te / pe
        return Estimate(len(pre), len(ev), fp * sum(pre.values()) + fe * sum(ev.values()),
                        f"the rates measured on {MACHINE}, scaled by what {n_p} pretrainings "
                        f"and {n_e} evaluations finished in {runs} took against their "
                        f"prediction (x{fp:.2f} and x{fe:.2f})")  # fmt: skip
    return Estimate(len(pre), len(ev), sum(pre.values()) + sum(ev.values()),
                    f"seconds per sample and epoch measured on {MACHINE}")  # fmt: skip


def pretraining_seconds(cfg: PretrainConfig, train: float) -> float:
    """A grid cell on a training split of `train` samples: its epochs over the split less
    the validation carve, in a Ray trial; each epoch's validation kNN (forward passes over
    the whole split); the cell's fixed start."""
    pre, ft = rate(cfg.model.backbone, cfg.model.width)
    per_epoch = RAY_EPOCH_FACTOR * pre * train * (1 - cfg.data.val_fraction) + FORWARD * ft * train
    return RAY_CELL_S + cfg.optim.epochs * per_epoch


def evaluation_seconds(cfg: EvalConfig, samples: tuple[float, float]) -> float:
    """One evaluation: its training epochs over the labelled samples (fine-tuning; linear
    and kNN train no encoder: forward passes only), then forward passes over the training
    split (batch-norm statistics) and the test split."""
    n, n_test = samples
    _, ft = rate(cfg.model.backbone, cfg.model.width)
    ft *= cfg.frames / 64
    labelled = n * cfg.label_fraction  # semi: the labelled share of each class
    if cfg.protocol == "knn":
        train = 0.0
    elif cfg.protocol == "linear":
        train = cfg.optim.epochs * labelled * ft * FORWARD
    else:
        train = cfg.optim.epochs * labelled * ft
    return EVAL_LOAD_S + train + FORWARD * ft * (n + n_test)


def duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"
