"""python tune/sweep.py: Ray Tune + Optuna sweep over MCC's hyperparameters.

With no arguments: prepares the embedded synthetic dataset if missing (data/synthetic),
searches the three loss weights and the temperature (0.1-0.3, log) with Optuna's TPE
(seeded; 5 trials of 8 epochs at a constant lr, preset `sweep`) and ASHA early stopping on
a local Ray, scores each trial every epoch by kNN top-1 on the validation split carved
from the training split, evaluates the best trial once on the test split, and writes
runs/sweep/{results.csv, results.parquet, summary.md, optuna.journal}.

    python tune/sweep.py [--data DIR] [--out DIR] [--preset sweep] [--set KEY=VALUE ...]
        [--search loss.tau --search loss.margin ...] [--space KEY=LOW:HIGH[:log]|A,B,C ...]
        [--space-file space.json] [--trials 5] [--grid] [--cells cells.json]
        [--workers-per-trial 1] [--cpus-per-worker 1] [--use-gpu [--gpus-per-worker 1]]
        [--max-concurrent N] [--address auto] [--resume]
        [--confirm 3 [--confirm-protocol knn|linear|finetune|semi] [--confirm-fraction 0.1]
         [--confirm-epochs 24]]

Each trial is a Ray Train run of --workers-per-trial workers (tune/train.py), each with
--cpus-per-worker CPUs and, with --use-gpu, --gpus-per-worker GPUs (default 1; NCCL). As many
trials run at once as the CPUs (less one for Ray Data) and the GPUs allow, at most
--max-concurrent; a trial that cannot fit the cluster is refused before any starts.

Grid mode (--grid) runs every cell of the space's values (choices, or a range's two ends),
or the cells listed in --cells (a JSON list of {KEY: VALUE} dicts), with no searcher and no
early stopping; each cell has a unique run name and its result is cached in
OUT/cells/NAME.json, so rerunning the same grid skips finished cells.
`--resume` continues an interrupted search (finished trials are kept, not re-run). A
Ctrl-C writes the table and summary of what ran (marked interrupted, the test split not
scored) and exits with status 130.
`--confirm N` then reruns the best configuration and the control with the three loss weights
at 0 (no pretraining) on N seeds the search did not use, pretrained for `--confirm-epochs`
(three times the trials' epochs by default), scores each on the test split, and
appends mean +- std and whether the difference is resolved (> 2x the larger spread,
mcc.stats) to the summary (OUT/confirm.json, runs in OUT/confirm/).
`--confirm-protocol linear|finetune|semi` scores them by that protocol as well (semi:
`--confirm-fraction` of each class's labels, 0.1 by default; OUT/confirm-PROTOCOL.json; semi
fine-tunes with the `semi` evaluation preset, batch 8 for 60 epochs from the linear
protocol's layer); rerun with `--resume` to
add it to a finished sweep, whose pretraining runs and test scores are reused; a test score
made with another evaluation config stops the sweep with a message naming the changed
settings (mcc.runs.finished_run) instead of being overwritten.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python tune/sweep.py` from a checkout or a job's working dir
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcc import presets
from mcc.cli import SET_HELP
from mcc.config import ConfigError, PretrainConfig, apply_overrides, parse_set_args
from tune.space import SPACE, build_space, check_against
from tune.trial import METRIC, Interrupted, continue_hint, trial_config

DEFAULT_SEARCH = ["loss.triplet", "loss.nce", "loss.interp"]
# With no --search / --space: the three loss weights and tau over 0.1-0.3 (log), not the
# built-in 0.05-1: on the embedded set the slow seeds stay near random init for 8 epochs at
# tau 0.1 or 0.34 and leave it at 0.2 (docs/method.md, "Reduced presets").
DEFAULT_SPACE = ["loss.tau=0.1:0.3:log"]


def grid_cells(space, cells_file: str | None) -> list[dict]:
    if cells_file:
        cells = json.loads(Path(cells_file).read_text())
        if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
            raise ConfigError(f"--cells {cells_file} must hold a JSON list of {{KEY: VALUE}}")
        return cells
    keys = sorted(space)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(space[k].values() for k in keys))]


def search_space(args) -> dict:
    """The searched parameters: --search / --space / --space-file, or with none of them (and
    no --cells) DEFAULT_SEARCH and DEFAULT_SPACE."""
    if args.cells:
        return {}
    default = args.search is None and not (args.space or args.space_file)
    search = DEFAULT_SEARCH if default else args.search or []
    return build_space(search, DEFAULT_SPACE if default else args.space, args.space_file)


def check_storage_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--out {out} is not writable: {e}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python tune/sweep.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default="data/synthetic", help="prepared dataset, a folder or a "
                   "URI such as s3://bucket/ntu60; the default synthetic set is generated there "
                   "if missing")  # fmt: skip
    p.add_argument("--out", default="runs/sweep", help="sweep folder (absolute under ray job "
                   "submit)")  # fmt: skip
    p.add_argument("--preset", choices=sorted(presets.PRETRAIN), default="sweep")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[], help=SET_HELP)
    p.add_argument("--search", action="append", metavar="KEY", default=None,
                   help=f"search this built-in parameter (default: {' '.join(DEFAULT_SEARCH)} and "
                   f"{' '.join(DEFAULT_SPACE)}; "
                   f"built-in: {' '.join(SPACE)})")  # fmt: skip
    p.add_argument("--space", action="append", metavar="KEY=RANGE", default=[],
                   help="search KEY over LOW:HIGH[:log] or choices A,B,C")  # fmt: skip
    p.add_argument("--space-file", help="JSON {KEY: {low, high, log} | {choices}}")
    p.add_argument("--trials", type=int, default=5, help="Optuna trials (search mode)")
    p.add_argument("--grid", action="store_true", help="every cell, no searcher (ablations)")
    p.add_argument("--cells", help="grid mode: JSON list of cells instead of the product")
    p.add_argument("--grace-epochs", type=int, default=2, help="ASHA: epochs before a stop")
    p.add_argument("--seed", type=int, default=0, help="Optuna sampler seed")
    p.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                   help="trials at once, at most (default: as many as the CPUs and, with "
                   "--use-gpu, the GPUs allow)")  # fmt: skip
    p.add_argument("--workers-per-trial", type=int, default=1)
    p.add_argument("--cpus-per-worker", type=float, default=1)
    p.add_argument("--use-gpu", action="store_true", help="train each trial's workers on "
                   "GPUs (NCCL)")  # fmt: skip
    p.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                   help="GPUs per worker with --use-gpu (default 1; with one worker per "
                   "trial a fraction lets trials share a GPU)")  # fmt: skip
    p.add_argument("--test-eval", choices=["best", "all", "none"], default=None,
                   help="score on the test split: the best trial (search default) or every "
                   "cell (grid default)")  # fmt: skip
    p.add_argument("--confirm", type=int, default=0, metavar="N",
                   help="after the search, rerun the best configuration and the control (the "
                   "three loss weights at 0: no pretraining) on N fresh seeds, score each on "
                   "the test split and add the comparison to the summary (N >= 2)")  # fmt: skip
    p.add_argument("--confirm-protocol", choices=["knn", "linear", "finetune", "semi"],
                   help="how --confirm scores each run on the test split (evaluation "
                   "preset `small`, `semi` for semi; default: kNN, as the objective)")  # fmt: skip
    p.add_argument("--confirm-fraction", type=float,
                   help="labelled share of each class for --confirm-protocol semi "
                   "(default 0.1)")  # fmt: skip
    p.add_argument("--confirm-epochs", type=int, metavar="E",
                   help="pretraining epochs of each --confirm run (default: three times the "
                   "trials', 24 with the sweep preset): the search compares configurations "
                   "at a short budget, the confirmation trains the chosen one longer")  # fmt: skip
    p.add_argument("--address", help="Ray cluster ('auto'); default RAY_ADDRESS or local")
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return sweep(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"\n{e}", file=sys.stderr)
        return 130  # the shell's code for a Ctrl-C
    except KeyboardInterrupt:  # outside Tune's loop: test scoring, a confirmation's scoring
        print(f"\ninterrupted; {continue_hint(bool(args.grid or args.cells))}", file=sys.stderr)
        return 130


def sweep(args) -> int:
    # Everything a trial could trip over is checked here, before Ray starts.
    if args.trials < 1:
        raise ConfigError(f"--trials={args.trials}: need at least 1")
    if args.confirm and (args.confirm < 2 or args.grid or args.cells):
        raise ConfigError(f"--confirm={args.confirm}: needs a search (not --grid/--cells) and "
                          f"at least 2 seeds, for a spread")  # fmt: skip
    if args.confirm_protocol is not None and not args.confirm:
        raise ConfigError(f"--confirm-protocol {args.confirm_protocol}: scores the runs of a "
                          f"confirmation; add --confirm N")  # fmt: skip
    if args.confirm_fraction is not None and args.confirm_protocol != "semi":
        raise ConfigError(f"--confirm-fraction={args.confirm_fraction}: only the semi "
                          f"protocol uses it; add --confirm-protocol semi")  # fmt: skip
    if args.confirm_epochs is not None and not args.confirm:
        raise ConfigError(f"--confirm-epochs={args.confirm_epochs}: sets the pretraining of a "
                          f"confirmation's runs; add --confirm N")  # fmt: skip
    if args.confirm_epochs is not None and args.confirm_epochs < 1:
        raise ConfigError(f"--confirm-epochs={args.confirm_epochs}: need at least 1")
    args.confirm_protocol = args.confirm_protocol or "knn"
    args.confirm_fraction = 0.1 if args.confirm_fraction is None else args.confirm_fraction
    if args.confirm_protocol == "semi" and not 0 < args.confirm_fraction < 1:
        raise ConfigError(f"--confirm-fraction={args.confirm_fraction}: the semi-supervised "
                          f"protocol needs a share in (0, 1)")  # fmt: skip
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent={args.max_concurrent}: need at least 1")
    from tune.cluster import worker_gpus

    worker_gpus(args.use_gpu, args.gpus_per_worker)  # --gpus-per-worker without --use-gpu
    space = search_space(args)
    data = args.data if "://" in args.data else str(Path(args.data).expanduser().resolve())
    base = apply_overrides(  # an absolute data path: trials run in their own folders
        PretrainConfig(),
        {**presets.PRETRAIN[args.preset], "data.path": data, **parse_set_args(args.set)},
    )
    if base.data.val_fraction <= 0:
        raise ConfigError("the objective needs a validation split: set data.val_fraction > 0")
    check_against(space, base)
    cells = grid_cells(space, args.cells) if args.grid or args.cells else None
    for c in cells or []:
        trial_config(base, c)  # every cell is a valid config
    from tune.cluster import in_job_working_dir, warn_if_relative_in_job

    warn_if_relative_in_job(args.out)
    out = Path(args.out).expanduser().resolve()
    check_storage_writable(out)
    if in_job_working_dir():
        # A job's driver starts in Ray's copy of the working dir, which Ray may replace while
        # trials set up the same runtime env; Tune then fails in os.getcwd() after the last
        # trial (seen here with Ray 2.60). Every path is absolute by now: leave that copy.
        os.chdir(out)
    experiment = out / "tune"
    if (experiment / "sweep").exists() and not args.resume and cells is None:
        raise ConfigError(f"{out} already holds a sweep; pass --resume to continue it or "
                          f"choose another --out")  # fmt: skip
    prepare_data(base)

    from tune import grid, study
    from tune.cluster import connect, plan_resources

    print(f"using {connect(args.address)}", flush=True)
    # one trial's Train workers must fit the cluster (GPUs too): refused here, not in a trial
    plan_resources(args.workers_per_trial, args.cpus_per_worker, args.use_gpu,
                   gpus_per_worker=args.gpus_per_worker)  # fmt: skip
    t0 = time.time()
    table = study.run(args, base, space, out) if cells is None else grid.run(
        args, base, cells, out, space)  # fmt: skip
    if args.confirm and not table.empty and table[METRIC].notna().any():
        from tune.confirm import confirm

        c = confirm(args, base, table, out)
        m = c["metric"]
        print(f"confirmation on seeds {c['seeds']}: best {c['best'].get(m)}, control "
              f"{c['control'].get(m)} ({m} %)")  # fmt: skip
    if cells is None:
        from tune.summary import add_confirmations

        add_confirmations(out)
    print(f"\nsweep done in {time.time() - t0:.0f} s: {len(table)} trials")
    print(f"table:   {out / 'results.csv'} (and results.parquet)")
    print(f"summary: {out / 'summary.md'}")
    if cells is None:
        print(f"study:   {out / 'optuna.journal'} (optuna-dashboard {out / 'optuna.journal'})")
    return 0


def prepare_data(base: PretrainConfig) -> None:
    from mcc import files
    from mcc.shards import MANIFEST

    if files.exists(files.join(base.data.path, MANIFEST)):
        return
    if Path(base.data.path) != Path("data/synthetic").resolve():
        raise ConfigError(f"--data {base.data.path} is not a prepared dataset (no {MANIFEST})")
    from mcc.datasets.synthetic import prepare_if_missing

    prepare_if_missing(base.data.path)


def run_grid(argv: list[str]) -> int:
    """`main(argv)` for another layer (ablations/ runs its pretraining cells through here):
    a local Ray that this call started is shut down afterwards, so the caller's next stage
    (single-process evaluations) gets the CPUs back; a session the caller holds is kept."""
    import ray

    started = not ray.is_initialized()
    try:
        return main(argv)
    finally:
        if started and ray.is_initialized():
            ray.shutdown()


if __name__ == "__main__":
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    sys.exit(main())
