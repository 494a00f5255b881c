"""The sweep engine behind tune/sweep.py: Tuner setup, result table, summary, test scores.

Search mode: OptunaSearch (TPE, seeded, study persisted to OUT/optuna.journal) + ASHA on the
per-epoch validation kNN. Grid mode: explicit cells through `tune.grid_search`, no searcher,
no early stopping, finished cells cached in OUT/cells/ and skipped on the next run.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import ray
from ray import tune

from mcc import presets
from mcc.config import PretrainConfig, flatten, to_dict
from tune.cluster import TRIAL_DRIVER
from tune.progress import EpochLines
from tune.space import Param, to_tune
from tune.trial import METRIC, Interrupted, cell_name, continue_hint, run_trial, trial_config

STUDY = "mcc-sweep"


def concurrency(workers: int, cpus: float, limit: int | None = None) -> int:
    """Trials at once: the cluster's CPUs, less one for Ray Data, over one trial's workers
    (at most `limit`, the --max-concurrent of the command line)."""
    total = ray.cluster_resources().get("CPU", 1)
    fit = max(1, int((total - 1) // (workers * cpus)))
    return min(fit, limit) if limit else fit


def driver_resources() -> dict:
    """A trial driver holds no CPU (its Train workers do); where the cluster offers the
    custom `trial_driver` resource (a local Ray started here), it holds one of those, so
    drivers and Ray Data never starve each other (docs/ray.md, "Two hangs on small machines")."""
    if ray.cluster_resources().get(TRIAL_DRIVER):
        return {"CPU": 0, TRIAL_DRIVER: 1}
    return {"CPU": 0.01}


def run_search(args, base: PretrainConfig, space: dict[str, Param], cells, out: Path):
    import optuna
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    workers, cpus = args.workers_per_trial, args.cpus_per_worker
    at_once = concurrency(workers, cpus, args.max_concurrent)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=to_dict(base), out=str(out), workers=workers,
                             cpus=cpus),
        driver_resources(),
    )  # fmt: skip
    path = out / "tune" / "sweep"
    # A grid is resumed cell by cell (cache + each cell's own Train run), so each invocation
    # is a fresh Tune experiment over the cells still to run.
    name = "sweep" if cells is None else f"grid-{time.strftime('%Y%m%d-%H%M%S')}"
    # Tune's status table off; one line per trial per epoch instead (tune/progress.py)
    progress = EpochLines(METRIC, base.optim.epochs)
    run_config = tune.RunConfig(name=name, storage_path=str(out / "tune"), verbose=0,
                                callbacks=[progress])  # fmt: skip
    cached: list[dict] = []
    restored = False
    if cells is not None:
        todo = []
        for c in cells:
            f = out / "cells" / f"{cell_name(c)}.json"
            (cached.append(json.loads(f.read_text())) if f.exists() else todo.append(c))
        print(f"grid: {len(cells)} cells, {len(cached)} cached, {len(todo)} to run", flush=True)
        tuner = None
        if todo:
            tuner = tune.Tuner(
                trainable,
                param_space={"cell": tune.grid_search(todo)},
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode="max", max_concurrent_trials=at_once
                ),
                run_config=run_config,
            )
    else:
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(out / "optuna.journal"))
        )
        searcher = OptunaSearch(
            metric=METRIC,
            mode="max",
            sampler=optuna.samplers.TPESampler(seed=args.seed),
            seed=args.seed,
            storage=storage,
            study_name=STUDY,
        )
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=base.optim.epochs,
            grace_period=min(args.grace_epochs, base.optim.epochs),
            reduction_factor=2,
        )
        restored = bool(args.resume and tune.Tuner.can_restore(path))
        if restored:
            tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True,
                                       resume_errored=True)  # fmt: skip
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=to_tune(space),
                tune_config=tune.TuneConfig(
                    metric=METRIC,
                    mode="max",
                    search_alg=searcher,
                    scheduler=scheduler,
                    num_samples=args.trials,
                    max_concurrent_trials=at_once,
                ),
                run_config=run_config,
            )
    rows = []
    unfinished, interrupted = 0, False
    if tuner is not None:
        grid, interrupted = fit(tuner)
        # Tune returns normally after a Ctrl-C. Besides its handler (see fit), count the
        # trials neither finished nor failed and, in a search, the samples never started (a
        # restored search may have been started with another --trials: trust its own count).
        expected = len(todo) if cells is not None else 0 if restored else args.trials
        unfinished = max(len(grid), expected) - grid.num_terminated - grid.num_errors
        interrupted = interrupted or unfinished > 0
        for r in grid:
            row = row_of(r, base.optim.epochs, out)
            done = out / "cells" / f"{row['trial']}.json"
            if cells is not None and done.exists():
                # the cell's own record: right also when its Train run had already finished
                # before this trial (a resumed cell reports no epochs to Tune)
                row = cached_row(json.loads(done.read_text()), base.optim.epochs, "completed")
            rows.append(row)
    if cells is not None:
        rows += [cached_row(c, base.optim.epochs, "completed (cached)") for c in cached]
    table = fill_in_force(pd.DataFrame(rows), base)
    test_eval = args.test_eval or ("all" if cells is not None else "best")
    if not interrupted:
        add_test_scores(table, base, test_eval, out)
    table.to_csv(out / "results.csv", index=False)
    table.to_parquet(out / "results.parquet", index=False)
    write_summary(table, space, base, out, cells is None, interrupted, unfinished)
    if interrupted:
        raise Interrupted(unfinished, out, grid=cells is not None)
    return table


def fit(tuner):
    """(tuner.fit(), whether a SIGINT interrupted it), then the SIGINT handler of before: Tune
    installs its own and leaves it in place, so a Ctrl-C in the caller's next stage (the
    ablation runner's evaluations) would only print Tune's warning."""
    before = signal.getsignal(signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    try:
        grid = tuner.fit()
        # Tune's handler puts the previous one back on the first SIGINT (or SIGUSR1) and
        # otherwise stays: finding the previous one here means the run was interrupted,
        # also when Tune's cleanup has marked every trial terminated.
        tune_handler = main and not int(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0"))
        return grid, tune_handler and signal.getsignal(signal.SIGINT) is before
    finally:
        if main:
            signal.signal(signal.SIGINT, before)


def row_of(result, max_epochs: int, out: Path) -> dict:
    cfg = result.config or {}
    params = dict(cfg["cell"]) if "cell" in cfg else {k: v for k, v in cfg.items()}
    m = result.metrics or {}
    hist = result.metrics_dataframe
    # Epochs of the Train run, not Tune iterations: a cell that resumed its Train run reports
    # only its remaining epochs to this trial.
    epochs = int(m["epoch"]) + 1 if "epoch" in m else int(m.get("training_iteration", 0) or 0)
    if result.error is not None:
        status = "error"
    elif epochs >= max_epochs:
        status = "completed"
    else:
        status = "stopped early"
    name = cell_name(params)
    best_val = None
    if hist is not None and METRIC in hist:
        best_val = float(hist[METRIC].max())
    return {
        "trial": name,
        **{f"param:{k}": v for k, v in params.items()},
        METRIC: m.get(METRIC),
        f"best_{METRIC}": best_val,
        "epochs": epochs,
        "wall_time_s": round(float(m.get("time_total_s", 0.0) or 0.0), 1),
        "status": status,
        "error": str(result.error).splitlines()[0][:200] if result.error else "",
        "checkpoint": final_checkpoint(out, name),
    }


def fill_in_force(table: pd.DataFrame, base: PretrainConfig) -> pd.DataFrame:
    """A `param:KEY` cell that a trial did not set (a grid whose cells set different keys,
    e.g. a confirmation's control) holds the value in force, the base config's, not NaN."""
    values = flatten(to_dict(base))
    for col in [c for c in table.columns if c.startswith("param:")]:
        key = col[len("param:"):]
        if key in values and table[col].isna().any():
            fill = values[key]
            fill = list(fill) if isinstance(fill, tuple) else fill
            table[col] = [fill if _missing(v) else v for v in table[col]]
    return table


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def final_checkpoint(out: Path, name: str) -> str:
    """The trial's newest Ray Train checkpoint file. Read from the Train storage, because ASHA
    (also at max_t) stops a trial's driver as soon as its last epoch is reported."""
    from tune.worker import CHECKPOINT_FILE, latest_checkpoint

    found = latest_checkpoint(str(out / "train"), name)
    return f"{found[0].path}/{CHECKPOINT_FILE}" if found else ""


def cached_row(c: dict, max_epochs: int, status: str) -> dict:
    return {
        "trial": cell_name(c["params"]),
        **{f"param:{k}": v for k, v in c["params"].items()},
        METRIC: c.get(METRIC),
        f"best_{METRIC}": c.get(METRIC),
        "epochs": c.get("epochs"),
        "wall_time_s": c.get("wall_time_s"),
        "status": status if c.get("epochs") == max_epochs else f"{status} ({c.get('epochs')} ep)",
        "error": "",
        "checkpoint": c.get("checkpoint", ""),
    }


def add_test_scores(table: pd.DataFrame, base: PretrainConfig, which: str, out: Path) -> None:
    """Score on the test split, once: kNN top-1 of the chosen trials' final encoders (a run
    already scored from the same checkpoint, in OUT/test/TRIAL, is read back)."""
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


def score_once(ev, ckpt: str, run: Path) -> float:
    """Test top-1 of `ev` from `ckpt`, evaluated into the folder `run` unless `run` already
    holds that score from the same checkpoint and evaluation config (a resumed sweep reads it
    back; a changed recipe scores again)."""
    from mcc.evaluate import changed_settings, evaluate

    done = run / "result.json"
    res = json.loads(done.read_text()) if done.exists() else {}
    same = (run / "config.json").exists() and not changed_settings(run, ev)
    if res.get("checkpoint") != ckpt or not same:
        res = evaluate(ev, ckpt, run, progress=False)
    return res["top1"]


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


def importances(out: Path) -> dict:
    import optuna

    try:
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(out / "optuna.journal"))
        )
        study = optuna.load_study(study_name=STUDY, storage=storage)
        return optuna.importance.get_param_importances(study)
    except Exception as e:  # too few finished trials, or no variation: say so in the summary
        return {"(not available)": f"{type(e).__name__}: {e}"}


def write_summary(table, space, base, out: Path, search: bool, interrupted: bool = False,
                  unfinished: int = 0) -> None:  # fmt: skip
    lines = [f"# MCC sweep ({time.strftime('%Y-%m-%d %H:%M')})", ""]
    if interrupted:
        lines += [f"**Interrupted**: {unfinished or 'some'} trial(s) unfinished, shown as "
                  f"stopped early if they started; the test split was not scored. "
                  f"{continue_hint(not search).capitalize()}.", ""]  # fmt: skip
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
    if search:
        lines += ["## Parameter importances (Optuna, fANOVA)", ""]
        for k, v in importances(out).items():
            lines += [f"- `{k}`: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}"]
        lines += [""]
    shown = table.drop(columns=["checkpoint"], errors="ignore")
    first = ["trial", *(c for c in shown.columns if c.startswith("param:"))]  # a grid's cells
    shown = shown[[c for c in first if c in shown] + [c for c in shown if c not in first]]
    lines += ["## All trials", "", markdown(shown), ""]
    (out / "summary.md").write_text("\n".join(lines))


def departures(base: PretrainConfig, space: dict) -> dict:
    """The base config's values that differ from the paper's defaults (PretrainConfig()),
    other than the searched keys and the data path: what a reader needs to rerun a trial."""
    paper = flatten(to_dict(PretrainConfig()))
    values = flatten(to_dict(base))
    return {k: (",".join(map(str, v)) if isinstance(v, tuple) else v)
            for k, v in values.items()
            if v != paper.get(k) and k not in space and k != "data.path"}  # fmt: skip


def markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "(none)"

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return ""
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join([head, rule, *body])


CONTROL = {"loss.triplet": 0.0, "loss.nce": 0.0, "loss.interp": 0.0}  # no pretraining


def confirm(args, base: PretrainConfig, table: pd.DataFrame, out: Path) -> dict:
    """Rerun the best trial's configuration and the control (the three loss weights at 0: the
    encoder keeps its random initialisation) on `args.confirm` seeds the search did not use,
    each pretrained for `args.confirm_epochs` (None: three times the trials'), through the
    grid engine in OUT/confirm (cached, so an interrupted confirmation resumes),
    and score every run once on the test split: by kNN (the objective's protocol), or by
    `args.confirm_protocol` (linear: a linear layer on the frozen encoder; finetune; semi:
    fine-tuning on `args.confirm_fraction` of each class). Returns the comparison, written to
    OUT/confirm.json (OUT/confirm-PROTOCOL.json for the others); `add_confirmations` puts
    every such file into the summary."""
    import argparse
    import statistics

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
        (out / confirm_file(protocol, fraction)).write_text(json.dumps(result, indent=2))
        return result
    cells = [{**p, "optim.epochs": epochs, "seed": s} for p in arms.values() for s in seeds]
    # kNN test scores always (cached per run); another protocol is scored below as well
    grid_args = argparse.Namespace(**{**vars(args), "test_eval": "all"})
    runs = run_search(grid_args, trial_config(base, {"optim.epochs": epochs}), {}, cells,
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
        result[arm] = {"params": p, metric: top1,
                       "mean": statistics.mean(top1) if top1 else None,
                       "std": statistics.stdev(top1) if len(top1) > 1 else None}  # fmt: skip
    b, c = result["best"], result["control"]
    complete = len(b[metric]) == len(c[metric]) == len(seeds)
    result["difference"] = b["mean"] - c["mean"] if complete else None
    result["resolved"] = complete and abs(result["difference"]) > 2 * max(b["std"], c["std"])
    (out / confirm_file(protocol, fraction)).write_text(json.dumps(result, indent=2))
    return result


def protocol_name(protocol: str, fraction: float | None) -> str:
    return f"semi-{fraction:g}" if protocol == "semi" else protocol


def confirm_file(protocol: str, fraction: float | None = None) -> str:
    name = protocol_name(protocol, fraction)
    return "confirm.json" if protocol == "knn" else f"confirm-{name}.json"


def confirmation_lines(result: dict) -> list[str]:
    """The summary's section for one confirm*.json."""
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
