"""One trial of a sweep: what the engine (tune/tuner.py, grid.py, study.py) and tune/sweep.py
(the command) both need, so that neither imports the other's modules at import time.

A trial is a function (Ray Train V2's Tune pattern): it builds and fits a TorchTrainer
through tune/train.py, reports `METRIC` every epoch, and records its result in
OUT/cells/NAME.json for grids and confirmations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mcc.config import PretrainConfig, apply_overrides, from_dict
from mcc.files import atomic_write

METRIC = "val_knn_top1"


class Interrupted(Exception):
    """The search was interrupted (a Ctrl-C, after which Tune returns normally; see
    tune/tuner.py: fit): the table and summary of what ran are written, the test split is
    not scored, and the same command with `--resume` continues; a grid (--grid, --cells)
    continues by running the same command again (finished cells are cached)."""

    def __init__(self, unfinished: int, out: Path, grid: bool = False) -> None:
        what = f"interrupted with {unfinished} trial(s) unfinished" if unfinished else (
            "interrupted")  # fmt: skip
        super().__init__(f"{what}; the table so far is in {out}; {continue_hint(grid)}")
        self.unfinished = unfinished


def continue_hint(grid: bool) -> str:
    if grid:  # finished cells are cached; a cut-off cell resumes its own Train run
        return "run the same command again to continue (finished cells are kept)"
    return "run the same command with --resume to continue"


def cell_name(params: dict) -> str:
    """A unique, readable run name for one set of parameter values."""
    text = ",".join(f"{k}={params[k]}" for k in sorted(params)) or "base"
    return re.sub(r"[^A-Za-z0-9=.,_-]", "_", text)


def trial_config(base: PretrainConfig, params: dict) -> PretrainConfig:
    return apply_overrides(base, {k: str(v) for k, v in params.items()})


def run_trial(config: dict, base: dict, out: str, workers: int, cpus: float,
              use_gpu: bool = False, gpus: float | None = None) -> None:  # fmt: skip
    """A Tune trial (Train V2: a function that builds and fits a TorchTrainer of `workers`
    workers, `cpus` CPUs and with use_gpu `gpus` GPUs each). Each epoch of the Train run
    becomes one Tune iteration through TuneReportCallback."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from tune.train import run_pretraining

    params = dict(config["cell"]) if "cell" in config else dict(config)
    cfg = trial_config(from_dict(PretrainConfig, base), params)
    name = cell_name(params)
    res = run_pretraining(
        cfg,
        Path(out) / "trials" / name,
        num_workers=workers,
        cpus_per_worker=cpus,
        use_gpu=use_gpu,
        gpus_per_worker=gpus,
        storage_path=str(Path(out) / "train"),
        name=name,
        resume=True,  # a restored trial continues its own Train run
        callbacks=[TuneReportCallback()],
        objective="val_knn",
    )
    cache = Path(out) / "cells" / f"{name}.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    final = res["final"]
    atomic_write(cache, json.dumps({
        "params": params, METRIC: final.get(METRIC), "epochs": final.get("epoch", -1) + 1,
        "checkpoint": res["checkpoint"], "wall_time_s": res.get("wall_time_s"),
    }))  # fmt: skip
