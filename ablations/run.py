"""Running a table: its pretraining cells through the sweep engine's grid, then every row's
downstream evaluation in this process.

Both stages cache by files, so rerunning a table re-runs nothing finished and an interrupted
table resumes: the grid skips cells with a result in OUT/pretrain/DATASET/cells/ and
continues a cut-off cell from its own last checkpoint (tune/sweep.py); an evaluation is done
when its folder holds result.json (written last, atomically, by mcc.evaluate) made with the
same settings, and one made with other settings stops the run with a message naming them
(mcc.runs.finished_run).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from ablations.cells import Cell, Dataset, Plan, grid_sets
from ablations.presets import Preset
from mcc.config import ConfigError
from mcc.files import atomic_write
from mcc.shards import MANIFEST, read_manifest

META = "ablations.json"
INTERRUPTED = 130  # the shell's status for a Ctrl-C (tune/sweep.py returns it too)
# What is true after an interruption: both stages cache by files (see the docstring).
CONTINUE = (
    "run the same command again to continue: finished pretraining cells and evaluations "
    "are kept, a cut-off pretraining cell resumes from its last epoch's checkpoint and a "
    "cut-off evaluation starts over"
)
DEFAULT_DATA = "data/synthetic"


def resolve_dataset(path: str, what: str = "--data") -> Dataset:
    """A prepared dataset folder -> Dataset(its manifest's name, absolute path). The default
    synthetic set is generated when missing (as tune/sweep.py does); any other folder without
    a manifest is an error."""
    p = Path(path).expanduser().resolve()
    if not (p / MANIFEST).exists():
        if p == Path(DEFAULT_DATA).resolve():
            from mcc.datasets.synthetic import prepare_if_missing

            prepare_if_missing(p)
        else:
            raise ConfigError(
                f"{what} {path} is not a prepared dataset (no {MANIFEST}); "
                f"prepare it with python -m mcc prepare ..."
            )
    try:
        return Dataset(read_manifest(p).name, str(p))
    except (ValueError, KeyError) as e:
        raise ConfigError(f"{what} {path}: unreadable {MANIFEST}: {e}") from None


def check_benchmarks(plan: Plan) -> None:
    """Every run's data.benchmark exists in its dataset (Tables 6, 7 pretrain on NTU's
    xsub / xview / xset), so a wrong dataset fails here, not inside a Ray trial."""
    paths = {d["key"]: d["path"] for d in plan.datasets.values()}
    wanted = {
        (p.dataset, p.params.get("data.benchmark", ""), "a pretraining")
        for p in plan.pretrainings()
    }
    wanted |= {
        (e.dataset, e.overrides.get("data.benchmark", ""), "an evaluation")
        for e in plan.evaluations()
    }
    for key, bench, what in sorted(wanted):
        try:
            read_manifest(paths[key]).split_column(bench)
        except ValueError as e:
            raise ConfigError(
                f"{plan.table}: {what} needs benchmark {bench!r} of {paths[key]}: {e}"
            ) from None


def hardware() -> dict:
    """What this process runs on, for the report's first lines."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
    }


def check_out(
    out: Path, preset: Preset, pre_set: dict, eval_set: dict, datasets: dict[str, Dataset]
) -> dict:
    """OUT's record of what produced it (META). Runs are cached by name, and a name says
    nothing about the preset or the data: a folder holds one preset, one set of overrides
    and one path per dataset name, and anything else is refused here."""
    want = {
        "preset": preset.name,
        "preset_pretrain": preset.pretrain,
        "preset_evaluate": preset.evaluate,
        "set": pre_set,
        "eval_set": eval_set,
    }
    want = json.loads(json.dumps(want))
    f = out / META
    meta = json.loads(f.read_text()) if f.exists() else {**want, "datasets": {}, "runs": []}
    for k, v in want.items():
        if meta.get(k) != v:
            raise ConfigError(
                f"--out {out} holds runs made with {k}={meta.get(k)!r}, not "
                f"{v!r}: choose another --out"
            )
    for ds in datasets.values():
        had = meta["datasets"].get(ds.key)
        if had and had != ds.path:
            raise ConfigError(
                f"--out {out} holds runs on dataset {ds.key!r} from {had}, not "
                f"{ds.path}: choose another --out"
            )
        meta["datasets"][ds.key] = ds.path
    return meta


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(obj, indent=1))


def start(out: Path, meta: dict, plans: list[Plan], argv: list[str]) -> dict:
    """Write META and the plans (the report's index) before anything runs."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out} is not writable: {e}") from None
    meta["runs"].append(
        {
            "tables": [p.table for p in plans],
            "argv": argv,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "hardware": hardware(),
        }
    )
    write_json(out / META, meta)
    for p in plans:
        write_json(out / "tables" / f"{p.table}.json", p.to_json())
    return meta


def pretrain_stage(
    plan: Plan,
    out: Path,
    preset: Preset,
    pre_set: dict,
    *,
    address: str | None = None,
    workers_per_trial: int = 1,
    cpus_per_worker: float = 1,
    use_gpu: bool = False,
    gpus_per_worker: float | None = None,
) -> int:
    """Every pretraining cell of `plan` not yet cached, through tune/sweep.py's grid (one grid
    per source dataset; with use_gpu its workers train on GPUs, `gpus_per_worker` each).
    Returns the grid's exit status (0 when nothing was left to run)."""
    paths = {d["key"]: d["path"] for d in plan.datasets.values()}
    by_dataset: dict[str, list] = {}
    for p in plan.pretrainings():
        by_dataset.setdefault(p.dataset, []).append(p)
    for key, cells in by_dataset.items():
        todo = [p for p in cells if not p.cell_file(out).exists()]
        print(
            f"pretraining on {key}: {len(cells)} cells, {len(cells) - len(todo)} cached", flush=True
        )
        if not todo:
            continue  # nothing to run: no Ray at all
        folder = cells[0].folder(out)
        cells_file = folder / f"grid-{plan.table}.json"
        write_json(cells_file, [p.params for p in cells])
        argv = [
            "--data",
            paths[key],
            "--out",
            str(folder),
            "--preset",
            "paper",
            "--cells",
            str(cells_file),
            "--test-eval",
            "none",
            "--workers-per-trial",
            str(workers_per_trial),
            "--cpus-per-worker",
            str(cpus_per_worker),
        ]
        if use_gpu:
            argv.append("--use-gpu")
        if gpus_per_worker is not None:
            argv += ["--gpus-per-worker", f"{gpus_per_worker:g}"]
        for k, v in grid_sets(preset, pre_set).items():
            argv += ["--set", f"{k}={_text(v)}"]
        if address:
            argv += ["--address", address]
        from tune.sweep import run_grid

        rc = run_grid(argv)
        if rc:
            return rc
    return 0


def _text(v) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def checkpoint_of(cell: Cell, out: Path) -> tuple[str | None, str]:
    """(the checkpoint an evaluation starts from, or None from scratch; why it is missing)."""
    if cell.pretrain is not None:
        f = cell.pretrain.cell_file(out)
        if not f.exists():
            return None, f"pretraining cell {cell.pretrain.name} has no result ({f})"
        ckpt = cell.pretrain.trial_dir(out) / "checkpoint.pt"
        if not ckpt.exists():  # a folder that moved keeps its layout; else the record
            ckpt = Path(json.loads(f.read_text()).get("checkpoint") or ckpt)
        return (str(ckpt), "") if ckpt.exists() else (None, f"{ckpt} does not exist")
    if cell.supervised is not None:
        ckpt = out / cell.supervised.dir / "checkpoint.pt"
        if not (out / cell.supervised.dir / "result.json").exists() or not ckpt.exists():
            return None, f"the supervised run {cell.supervised.dir} has no checkpoint"
        return str(ckpt), ""
    return None, ""


def evaluation_stage(plan: Plan, out: Path, progress: bool = True) -> tuple[int, int, int]:
    """Every evaluation of `plan` not finished yet; returns (run, cached, failed). One
    finished with other settings is a ConfigError (mcc.evaluate.finished_evaluation)."""
    from mcc.evaluate import evaluate, finished_evaluation

    starts: dict[str, Cell | None] = {}
    for c in plan.cells:
        if c.supervised is not None:
            starts.setdefault(c.supervised.dir, None)  # from scratch, on the source
        starts.setdefault(c.evaluation.dir, c)
    evals = plan.evaluations()
    ran = cached = failed = 0
    for i, ev in enumerate(evals, 1):
        folder = out / ev.dir
        cell = starts[ev.dir]
        ckpt, missing = checkpoint_of(cell, out) if cell is not None else (None, "")
        cfg = ev.config()
        if finished_evaluation(cfg, folder) is not None:
            cached += 1
            continue
        tag = f"[{i}/{len(evals)}] {ev.dir}"
        if missing:
            print(f"{tag}: skipped, {missing}", flush=True)
            failed += 1
            continue
        t0 = time.time()
        try:
            res = evaluate(cfg, ckpt, folder, progress=progress)
        except Exception as e:  # one failed cell is reported; the table goes on
            traceback.print_exc(limit=3, file=sys.stderr)
            print(f"{tag}: failed, {type(e).__name__}: {e}", flush=True)
            failed += 1
            continue
        ran += 1
        print(
            f"{tag}: {res['protocol']} top-1 {res['top1']:.2f} ({time.time() - t0:.0f} s)",
            flush=True,
        )
    return ran, cached, failed


def run_plans(
    plans: list[Plan],
    out: Path,
    preset: Preset,
    pre_set: dict,
    *,
    address: str | None = None,
    workers_per_trial: int = 1,
    cpus_per_worker: float = 1,
    use_gpu: bool = False,
    gpus_per_worker: float | None = None,
    progress: bool = True,
) -> int:
    """Pretrain, then evaluate, every plan. 0: every cell has a result; 1: some failed;
    2: bad input; 130: the pretraining grid was interrupted (Ctrl-C), nothing more ran."""
    t0 = time.time()
    failed = 0
    for plan in plans:
        rc = pretrain_stage(
            plan,
            out,
            preset,
            pre_set,
            address=address,
            workers_per_trial=workers_per_trial,
            cpus_per_worker=cpus_per_worker,
            use_gpu=use_gpu,
            gpus_per_worker=gpus_per_worker,
        )
        if rc in (2, INTERRUPTED):  # Tune caught a Ctrl-C and returned: no further stage
            return rc
    for plan in plans:
        ran, cached, bad = evaluation_stage(plan, out, progress)
        print(
            f"{plan.table}: {ran} evaluations run, {cached} cached, {bad} failed or skipped",
            flush=True,
        )
        failed += bad
        for s in plan.skipped:
            print(f"{plan.table}: row {s['row']!r} {s['column']} not run: {s['reason']}")
    print(f"done in {time.time() - t0:.0f} s", flush=True)
    return 1 if failed else 0
