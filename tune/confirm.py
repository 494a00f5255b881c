"""--confirm: the best trial's configuration against the control on fresh seeds, scored on
the test split, with the verdict of mcc.stats.resolved."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from mcc.config import PretrainConfig
from mcc.files import atomic_write
from mcc.stats import mean_std, resolved
from tune import grid
from tune.scoring import downstream_top1
from tune.summary import best_params
from tune.trial import cell_name, trial_config

CONTROL = {"loss.triplet": 0.0, "loss.nce": 0.0, "loss.interp": 0.0}  # no pretraining


def confirm(args, base: PretrainConfig, table: pd.DataFrame, out: Path) -> dict:
    """Rerun the best trial's configuration and the control (the three loss weights at 0: the
    encoder keeps its random initialisation) on `args.confirm` seeds the search did not use,
    each pretrained for `args.confirm_epochs` (None: three times the trials'), through the
    grid in OUT/confirm (cached, so an interrupted confirmation resumes), and score every run
    once on the test split: by kNN (the objective's protocol), or by
    `args.confirm_protocol` (linear: a linear layer on the frozen encoder; finetune; semi:
    fine-tuning on `args.confirm_fraction` of each class). Returns the comparison, written to
    OUT/confirm.json (OUT/confirm-PROTOCOL.json for the others); tune.summary's
    `add_confirmations` puts every such file into the summary."""
    # plain Python values (a table cell may hold a NumPy scalar): the cells become configs
    params = {k: v.item() if hasattr(v, "item") else v for k, v in best_params(table).items()}
    seeds = [base.seed + 1 + i for i in range(args.confirm)]
    # the search compared configurations at its short budget; the chosen one trains longer
    epochs = args.confirm_epochs or 3 * int(params.get("optim.epochs", base.optim.epochs))
    protocol = args.confirm_protocol  # defaults filled in by tune/sweep.py: sweep
    fraction = args.confirm_fraction if protocol == "semi" else None
    arms = {"best": params, "control": CONTROL}
    result: dict = {"seeds": seeds, "metric": f"test_{protocol}_top1", "protocol": protocol,
                    "label_fraction": fraction, "epochs": epochs}  # fmt: skip
    metric = result["metric"]
    weights = [float(params.get(k, getattr(base.loss, k[5:]))) for k in CONTROL]
    if not any(w > 0 for w in weights):
        note = "the best trial has every loss weight at 0, so it is the control itself"
        result.update(best={"params": params}, control={"params": CONTROL}, difference=None,
                      resolved=False, note=note)  # fmt: skip
        atomic_write(out / confirm_file(protocol, fraction), json.dumps(result, indent=2))
        return result
    cells = [{**p, "optim.epochs": epochs, "seed": s} for p in arms.values() for s in seeds]
    # kNN test scores always (cached per run); another protocol is scored below as well
    grid_args = argparse.Namespace(**{**vars(args), "test_eval": "all"})
    runs = grid.run(grid_args, trial_config(base, {"optim.epochs": epochs}), cells,
                    out / "confirm")  # fmt: skip
    if protocol == "knn":
        scores = dict(zip(runs["trial"], runs["test_knn_top1"]))
    else:
        done = runs[runs["status"].str.startswith("completed")]  # no partial encoder
        ckpts = dict(zip(done["trial"], done["checkpoint"]))
        folder = out / "confirm" / "test" / protocol_name(protocol, fraction)
        scores = {cell_name(c): downstream_top1(base, c, ckpts.get(cell_name(c)), protocol,
                                                fraction, folder)
                  for c in cells}  # fmt: skip
    for arm, p in arms.items():
        got = [scores.get(cell_name({**p, "optim.epochs": epochs, "seed": s})) for s in seeds]
        top1 = [float(v) for v in got if v is not None and v == v]
        mean, std = mean_std(top1)
        result[arm] = {"params": p, metric: top1, "mean": mean, "std": std}
    b, c = result["best"], result["control"]
    complete = len(b[metric]) == len(c[metric]) == len(seeds)
    result["difference"] = b["mean"] - c["mean"] if complete else None
    result["resolved"] = complete and resolved(b[metric], c[metric])
    atomic_write(out / confirm_file(protocol, fraction), json.dumps(result, indent=2))
    return result


def protocol_name(protocol: str, fraction: float | None) -> str:
    return f"semi-{fraction:g}" if protocol == "semi" else protocol


def confirm_file(protocol: str, fraction: float | None = None) -> str:
    name = protocol_name(protocol, fraction)
    return "confirm.json" if protocol == "knn" else f"confirm-{name}.json"
