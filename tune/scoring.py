"""Scoring a sweep's encoders on the test split, once each: kNN top-1 of the chosen trials,
or another protocol for a confirmation; a run already scored with the same settings in its
folder is read back (mcc.evaluate.finished_evaluation)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcc import presets
from mcc.config import EvalConfig, PretrainConfig
from tune.summary import best_row
from tune.trial import METRIC, cell_name, trial_config


def add_test_scores(table: pd.DataFrame, base: PretrainConfig, which: str, out: Path) -> None:
    """Column test_knn_top1: kNN top-1 of the final encoders of the best trial (`which` =
    "best"), of every completed one ("all") or of none, evaluated into OUT/test/TRIAL."""
    table["test_knn_top1"] = None
    if which == "none" or table.empty:
        return
    done = table[table["status"].str.startswith("completed") & table[METRIC].notna()]
    if done.empty:
        return
    picks = [best_row(table)] if which == "best" else list(done.index)
    ev = presets.evaluation(base, "small", {"protocol": "knn"})
    for i in picks:
        ckpt = table.at[i, "checkpoint"]
        if not ckpt or not Path(ckpt).exists():
            continue
        table.at[i, "test_knn_top1"] = score_once(ev, ckpt, out / "test" / table.at[i, "trial"])


def score_once(ev: EvalConfig, ckpt: str, run: Path) -> float:
    """Test top-1 of `ev` from `ckpt` (the final checkpoint of the trial `run` is named for),
    evaluated into the folder `run` unless it already holds that evaluation finished (a
    resumed sweep reads it back; one made with other settings is a ConfigError naming them)."""
    from mcc.evaluate import evaluate, finished_evaluation

    res = finished_evaluation(ev, run) or evaluate(ev, ckpt, run, progress=False)
    return res["top1"]


def downstream_top1(base: PretrainConfig, cell: dict, ckpt, protocol: str,
                    fraction: float | None, folder: Path) -> float | None:  # fmt: skip
    """Test top-1 of `protocol` (the `small` evaluation preset, `semi` for semi; the cell's
    own seed, so both arms of a seed share a labelled subset) from a confirmation run's final
    checkpoint; cached in folder/NAME, so an interrupted confirmation resumes here too."""
    if not ckpt or not Path(ckpt).exists():
        return None
    over = {"protocol": protocol}
    if protocol == "semi":
        over["label_fraction"] = str(fraction)
    recipe = "semi" if protocol == "semi" else "small"
    ev = presets.evaluation(trial_config(base, cell), recipe, over)
    return score_once(ev, ckpt, folder / cell_name(cell))
