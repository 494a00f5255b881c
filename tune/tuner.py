"""What a grid (tune/grid.py) and a study (tune/study.py) share: the trainable and its
resources, the run config, Tuner.fit with its Ctrl-C check, a finished trial as a table row,
and the end of every sweep: the table, the test scores, the summary."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pandas as pd
import ray
from ray import tune

from mcc.config import PretrainConfig, flatten, to_dict
from tune.cluster import TRIAL_DRIVER, worker_gpus
from tune.progress import EpochLines
from tune.scoring import add_test_scores
from tune.summary import write_summary
from tune.trial import METRIC, Interrupted, cell_name, run_trial


def concurrency(workers: int, cpus: float, limit: int | None = None, gpus: float = 0.0,
                resources: dict | None = None) -> int:  # fmt: skip
    """Trials at once: as many as the CPUs allow (the cluster's, less one for Ray Data, over
    one trial's workers) and, with `gpus` GPUs per worker, as many as the GPUs allow; at
    least 1 and at most `limit` (the --max-concurrent of the command line). `resources` is
    the cluster's (default: ray.cluster_resources())."""
    res = ray.cluster_resources() if resources is None else resources
    fit = int((res.get("CPU", 1) - 1) // (workers * cpus))
    if gpus > 0:
        fit = min(fit, int(res.get("GPU", 0) // (workers * gpus)))
    fit = max(1, fit)
    return min(fit, limit) if limit else fit


def trials_at_once(args) -> int:
    """`concurrency` for a sweep's command line (its workers, CPUs and GPUs per trial)."""
    gpus = worker_gpus(args.use_gpu, args.gpus_per_worker)
    return concurrency(args.workers_per_trial, args.cpus_per_worker, args.max_concurrent, gpus)


def driver_resources() -> dict:
    """A trial driver holds no CPU (its Train workers do); where the cluster offers the
    custom `trial_driver` resource (a local Ray started here), it holds one of those, so
    drivers and Ray Data never starve each other (docs/ray.md, "Two hangs on small machines")."""
    if ray.cluster_resources().get(TRIAL_DRIVER):
        return {"CPU": 0, TRIAL_DRIVER: 1}
    return {"CPU": 0.01}


def trainable(args, base: PretrainConfig, out: Path):
    """`run_trial` bound to the base config, the sweep folder and the Train workers' resources
    (the driver's own are `driver_resources`)."""
    workers, cpus = args.workers_per_trial, args.cpus_per_worker
    return tune.with_resources(
        tune.with_parameters(run_trial, base=to_dict(base), out=str(out), workers=workers,
                             cpus=cpus, use_gpu=args.use_gpu, gpus=args.gpus_per_worker),
        driver_resources(),
    )  # fmt: skip


def run_config(name: str, base: PretrainConfig, out: Path) -> tune.RunConfig:
    """Experiment `name` under OUT/tune; Tune's status table off, one line per trial per epoch
    instead (tune/progress.py)."""
    progress = EpochLines(METRIC, base.optim.epochs)
    return tune.RunConfig(name=name, storage_path=str(out / "tune"), verbose=0,
                          callbacks=[progress])  # fmt: skip


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


def unfinished(grid, expected: int) -> int:
    """Trials neither finished nor failed, and samples never started: Tune returns normally
    after a Ctrl-C, so this count tells an interrupted run too (besides `fit`'s check)."""
    return max(len(grid), expected) - grid.num_terminated - grid.num_errors


def row_of(result, params: dict, max_epochs: int, out: Path) -> dict:
    """One trial's row of the results table, from its Tune result and parameter values."""
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


def final_checkpoint(out: Path, name: str) -> str:
    """The trial's newest Ray Train checkpoint file. Read from the Train storage, because ASHA
    (also at max_t) stops a trial's driver as soon as its last epoch is reported."""
    from tune.worker import CHECKPOINT_FILE, latest_checkpoint

    found = latest_checkpoint(str(out / "train"), name)
    return f"{found[0].path}/{CHECKPOINT_FILE}" if found else ""


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


def finish(rows: list[dict], base: PretrainConfig, out: Path, *, test_eval: str, grid: bool,
           space: dict | None = None, importances: dict | None = None, interrupted: bool,
           left: int) -> pd.DataFrame:  # fmt: skip
    """The end of every sweep: the results table (OUT/results.csv, .parquet), its test scores
    (`test_eval` trials, not after an interruption) and OUT/summary.md; raises Interrupted
    after writing them when the run was cut off (`left` trials unfinished)."""
    table = fill_in_force(pd.DataFrame(rows), base)
    if not interrupted:
        add_test_scores(table, base, test_eval, out)
    table.to_csv(out / "results.csv", index=False)
    table.to_parquet(out / "results.parquet", index=False)
    write_summary(table, space or {}, base, out, importances=importances, grid=grid,
                  interrupted=interrupted, unfinished=left)  # fmt: skip
    if interrupted:
        raise Interrupted(left, out, grid=grid)
    return table
