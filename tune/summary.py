"""OUT/summary.md of a sweep: objective, space, best configuration, all trials, and the
confirmations (OUT/confirm*.json) with their verdicts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from mcc.config import PretrainConfig, flatten, to_dict
from mcc.tables import markdown_table
from tune.trial import METRIC, continue_hint


def best_row(table: pd.DataFrame):
    """The best trial: the highest objective among the trials that ran every epoch (an ASHA
    stop is judged on fewer epochs); among all trials only when none finished."""
    ok = table[table[METRIC].notna()]
    done = ok[ok["status"].str.startswith("completed")]
    pool = done if not done.empty else ok
    return pool[METRIC].astype(float).idxmax()


def best_params(table: pd.DataFrame) -> dict:
    """The best trial's parameters, {KEY: value}, from its `param:KEY` columns."""
    best = table.loc[best_row(table)]
    return {k[6:]: best[k] for k in table.columns if k.startswith("param:")}


def write_summary(table: pd.DataFrame, space: dict, base: PretrainConfig, out: Path, *,
                  importances: dict | None = None, grid: bool = False,
                  interrupted: bool = False, unfinished: int = 0) -> None:  # fmt: skip
    """OUT/summary.md for the trials of `table`; `importances` (a study's) get a section."""
    lines = [f"# MCC sweep ({time.strftime('%Y-%m-%d %H:%M')})", ""]
    if interrupted:
        lines += [f"**Interrupted**: {unfinished or 'some'} trial(s) unfinished, shown as "
                  f"stopped early if they started; the test split was not scored. "
                  f"{continue_hint(grid).capitalize()}.", ""]  # fmt: skip
    lines += [f"Objective: `{METRIC}` (kNN top-1 % on the validation split, "
              f"{base.data.val_fraction:.0%} of each training class), maximised.", ""]  # fmt: skip
    if space:
        lines += ["Search space:", ""]
        lines += [f"- `{k}`: {p.describe()} (paper: {p.default})" for k, p in space.items()]
        lines += [""]
    fixed = departures(base, space)
    if fixed:
        lines += ["Every trial's other settings are the paper's except: "
                  + ", ".join(f"`{k}={v}`" for k, v in fixed.items()) + ".", ""]  # fmt: skip
    ok = table[table[METRIC].notna()] if not table.empty else table
    if not ok.empty:
        best = table.loc[best_row(table)]
        params = best_params(table)
        lines += ["## Best configuration", ""]
        lines += [f"- trial `{best['trial']}` ({best['status']}): {METRIC} = "
                  f"{float(best[METRIC]):.2f} after {best['epochs']} epochs"]  # fmt: skip
        lines += [f"- `{k}` = {v}" for k, v in params.items()]
        if best.get("test_knn_top1") is not None:
            lines += [f"- test kNN top-1 (scored once): {float(best['test_knn_top1']):.2f}"]
        lines += [f"- checkpoint: `{best['checkpoint']}`", ""]
    if importances is not None:
        lines += ["## Parameter importances (Optuna, fANOVA)", ""]
        for k, v in importances.items():
            lines += [f"- `{k}`: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}"]
        lines += [""]
    shown = table.drop(columns=["checkpoint"], errors="ignore")
    first = ["trial", *(c for c in shown.columns if c.startswith("param:"))]  # a grid's cells
    shown = shown[[c for c in first if c in shown] + [c for c in shown if c not in first]]
    lines += ["## All trials", "", trials_table(shown), ""]
    (out / "summary.md").write_text("\n".join(lines))


def departures(base: PretrainConfig, space: dict) -> dict:
    """The base config's values that differ from the paper's defaults (PretrainConfig()),
    other than the searched keys and the data path: what a reader needs to rerun a trial."""
    paper = flatten(to_dict(PretrainConfig()))
    values = flatten(to_dict(base))
    return {k: (",".join(map(str, v)) if isinstance(v, tuple) else v)
            for k, v in values.items()
            if v != paper.get(k) and k not in space and k != "data.path"}  # fmt: skip


def trials_table(table: pd.DataFrame) -> str:
    """The trials as Markdown: floats to 2 decimals, a missing value blank."""
    if table.empty:
        return "(none)"

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return ""
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    rows = [[cell(v) for v in row] for row in table.itertuples(False)]
    return markdown_table(list(table.columns), rows)


def confirmation_lines(result: dict) -> list[str]:
    """The summary's section for one confirm*.json (tune/confirm.py)."""
    protocol, fraction = result.get("protocol", "knn"), result.get("label_fraction")
    what = {"knn": "kNN", "linear": "linear", "finetune": "fine-tune"}.get(protocol) or (
        f"fine-tune with {fraction:g} of each class's labels")  # fmt: skip
    trained = f", {result['epochs']} pretraining epochs" if result.get("epochs") else ""
    lines = [f"## Confirmation on fresh seeds {result['seeds']}{trained} (test split, {what} "
             f"top-1 %)", ""]  # fmt: skip
    if result.get("note"):
        return lines + [f"Not run: {result['note']} (no pretraining)."]
    metric = result.get("metric", "test_knn_top1")
    for arm in ("best", "control"):
        r = result[arm]
        scored = ", ".join(f"{v:.1f}" for v in r[metric]) or "none"
        mean = f"{r['mean']:.1f} +- {r['std']:.1f}" if r["std"] is not None else "n/a"
        shown = ", ".join(f"`{k}`={v:.4g}" if isinstance(v, float) else f"`{k}`={v}"
                          for k, v in r["params"].items())  # fmt: skip
        lines += [f"- {arm} ({shown}): "
                  f"{mean} (per seed: {scored})"]  # fmt: skip
    if result["difference"] is not None:
        verdict = "resolved" if result["resolved"] else "not resolved (< 2x the larger spread)"
        lines += [f"- difference: {result['difference']:+.1f}, {verdict}"]
    else:
        lines += ["- incomplete: some runs have no test score; see confirm/summary.md"]
    return lines


def add_confirmations(out: Path) -> None:
    """Append every confirmation of this sweep (OUT/confirm*.json: kNN, and each protocol
    added later with --resume) to OUT/summary.md, which the search has just rewritten."""
    files = sorted(out.glob("confirm*.json"), key=lambda f: (f.name != "confirm.json", f.name))
    sections = [confirmation_lines(json.loads(f.read_text())) for f in files]  # kNN first
    if sections:
        with open(out / "summary.md", "a") as f:
            f.write("".join("\n" + "\n".join(lines) + "\n" for lines in sections))
