"""`python -m ablations {list,run,report}`: the paper's Tables 1-7 as experiments.

    python -m ablations list [--preset small]
    python -m ablations run TABLE [TABLE ...] [--preset smoke|small|paper] [--data DIR]
        [--target DIR --source [ROLE=]DIR ...] [--seeds 0 1 2] [--backbones stgcn ...]
        [--out DIR] [--address ADDR] [--use-gpu [--gpus-per-worker 1]]
        [--set KEY=V ...] [--eval-set KEY=V ...]
    python -m ablations report [--runs DIR] [--out DIR]

`run` pretrains every cell of the table through the sweep engine's grid (tune/sweep.py: Ray
Tune + Ray Train, finished cells cached), then runs each row's downstream evaluation
(mcc.evaluate), cached by its result.json; rerunning a table runs only what is missing.
--use-gpu trains the pretraining cells' Ray Train workers on GPUs (--gpus-per-worker each,
default 1); the evaluations run in this process, on its GPU when it has one.
Tables 6 and 7 fine-tune on a target dataset (--target) after pretraining on sources
(--source ntu60=DIR --source ntu120=DIR). `report` turns the result files into
report.md and one self-contained report.html.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ablations.cells import EVALUATED, TARGET, Dataset, expand
from ablations.presets import PRESETS
from ablations.specs import BACKBONE_NAMES, TABLES
from mcc.checkpoint import CheckpointError
from mcc.cli import SET_HELP
from mcc.config import ConfigError, parse_set_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ablations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="the tables, their rows, and what each preset costs")
    ls.add_argument("--preset", help="only this preset's costs")
    ls.add_argument("--data", help="size the estimates for this prepared dataset (default "
                    "data/synthetic)")  # fmt: skip
    ls.add_argument("--runs", help="estimate from the wall times of the runs finished in "
                    "this `run --out` folder (default runs/ablations/PRESET if it has "
                    "some)")  # fmt: skip

    run = sub.add_parser("run", help="run one or more tables (pretraining, then evaluation)")
    run.add_argument("tables", nargs="+", metavar="TABLE", help=f"{', '.join(TABLES)}")
    run.add_argument("--preset", default="small", help=f"{', '.join(PRESETS)} (default small)")
    run.add_argument(
        "--data",
        help="the evaluated dataset of tables 1-5 (default data/synthetic, generated if missing)",
    )
    run.add_argument("--target", help="tables 6, 7: the dataset fine-tuned and scored on")
    run.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="[ROLE=]DIR",
        help="tables 6, 7: a pretraining dataset, ROLE ntu60 or ntu120 "
        "(repeatable; ROLE may be left out where a table has one source)",
    )
    run.add_argument("--seeds", type=int, nargs="+", help="default: the preset's")
    run.add_argument(
        "--backbones", nargs="+", help="default: the preset's, else every model.backbone available"
    )
    run.add_argument("--out", help="output folder (default runs/ablations/PRESET)")
    run.add_argument("--address", help="Ray cluster ('auto'); default RAY_ADDRESS or local")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"pretraining override. {SET_HELP}",
    )
    run.add_argument(
        "--eval-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="evaluation override (EvalConfig keys)",
    )
    run.add_argument("--workers-per-trial", type=int, default=1)
    run.add_argument("--cpus-per-worker", type=float, default=1)
    run.add_argument("--use-gpu", action="store_true",
                     help="pretrain on GPUs (the sweep's --use-gpu)")  # fmt: skip
    run.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                     help="GPUs per pretraining worker with --use-gpu (default 1)")  # fmt: skip
    run.add_argument("--dry-run", action="store_true", help="print the cells, run nothing")
    run.add_argument("--no-progress", action="store_true")

    rep = sub.add_parser("report", help="report.md + report.html from a runs folder")
    rep.add_argument("--runs", default="runs/ablations/small", help="a `run --out` folder")
    rep.add_argument("--out", help="where to write the report (default RUNS/report)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list(args)
        if args.command == "run":
            return cmd_run(args, argv)
        return cmd_report(args)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a Ctrl-C outside Tune's loop (an evaluation), or a second one
        return interrupted()


def interrupted() -> int:
    from ablations.run import CONTINUE, INTERRUPTED

    print(f"\ninterrupted; {CONTINUE}", file=sys.stderr, flush=True)
    return INTERRUPTED


def get_preset(name: str):
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def get_table(name: str):
    if name not in TABLES:
        raise ConfigError(f"unknown table {name!r}; choose one of {', '.join(TABLES)}")
    return TABLES[name]


def cost_text(tables: list, preset, samples: tuple[int, int], runs: str | None = None) -> str:
    """"N pretrainings + M evaluations (about T[*])": * marks an estimate from finished runs
    (a folder per preset: `runs`, else runs/ablations/PRESET), printed under the list."""
    from ablations.costs import duration, estimate

    folder = Path(runs or f"runs/ablations/{preset.name}")
    est = estimate(tables, preset, samples, folder)
    star = "*" if "finished in" in est.basis else ""
    return (f"{est.pretrainings} pretrainings + {est.evaluations} evaluations (about "
            f"{duration(est.seconds)}{star})")  # fmt: skip


def cmd_list(args) -> int:
    presets = [get_preset(args.preset)] if args.preset else list(PRESETS.values())
    from ablations.cells import available_backbones
    from ablations.costs import MACHINE, dataset_samples, estimate

    samples, size = dataset_samples(args.data)
    print(f"backbones available now: {', '.join(available_backbones())}\n")
    for t in TABLES.values():
        bbs = ", ".join(BACKBONE_NAMES.get(b, b) for b in (t.backbones or available_backbones()))
        print(f"{t.name}  {t.title}")
        roles = (
            "; ".join(
                f"{'--target ' if r == TARGET else '--source ' + r + '='}DIR: {d}"
                for r, d in t.roles.items()
            )
            or "--data DIR"
        )
        print(f"  protocol {t.protocol} ({t.metric}); backbones {bbs}; datasets {roles}")
        print(f"  the paper: {', '.join(t.datasets)}; columns {' / '.join(t.paper_columns)}")
        if t.base:
            print(f"  every pretraining row: {_overrides(t.base)}")
        for r in t.rows:
            what = "no pre-training" if r.is_baseline else _overrides(r.pretrain or {})
            if r.supervised:
                what = "supervised on the source, then fine-tuned"
            src = f" on {r.source}{' ' + r.benchmark if r.benchmark else ''}" if r.source else ""
            col = f" [{r.column}]" if r.column else ""
            ev = f"; evaluate {_overrides(r.evaluate)}" if r.evaluate else ""
            print(f"    {r.label + col:<38} {what or '(the defaults: MCC)'}{src}{ev}")
        for p in presets:
            print(f"  {p.name}: {cost_text([t], p, samples, args.runs)}")
        print()
    print("presets:")
    for p in presets:
        seeds = " ".join(map(str, p.seeds))
        bbs = ", ".join(p.backbones) if p.backbones else "every available"
        print(f"  {p.name}: {p.description}; seeds {seeds}; backbones {bbs}")
        both = [TABLES["table1"], TABLES["table3"]]
        print(f"    table1 + table3: {cost_text(both, p, samples, args.runs)}")
        print(f"    all tables: {cost_text(list(TABLES.values()), p, samples, args.runs)}")
    print(
        f"\ncosts: one folder per preset, shared runs counted once; times are estimates for "
        f"{size} per dataset from seconds per sample and epoch measured on {MACHINE} "
        f"(ablations/costs.py: pretraining in Ray trials, Ray's start per cell, evaluations, "
        f"each backbone's own rate); a GPU or more threads are faster."
    )
    for p in presets:
        folder = Path(args.runs or f"runs/ablations/{p.name}")
        basis = estimate([TABLES["table1"]], p, samples, folder).basis
        if "finished in" in basis:
            print(f"* {p.name}: from {basis}")
    return 0


def _overrides(d: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in d.items())


def datasets_for(table, args) -> dict:
    """The table's dataset roles from the command line, each checked to be prepared."""
    from ablations.run import DEFAULT_DATA, resolve_dataset

    if not table.roles:
        if args.target or args.source:
            raise ConfigError(
                f"{table.name} runs on --data; --target / --source are for table6 and table7"
            )
        return {EVALUATED: resolve_dataset(args.data or DEFAULT_DATA)}
    sources = [r for r in table.roles if r != TARGET]
    need = f"{table.name} needs --target DIR and --source ROLE=DIR ({', '.join(sources)})"
    if not args.target or not args.source:
        raise ConfigError(f"{need}: {'; '.join(f'{r}: {d}' for r, d in table.roles.items())}")
    if args.data:
        raise ConfigError(f"{table.name}: give the evaluated dataset as --target, not --data")
    out = {TARGET: resolve_dataset(args.target, "--target")}
    for item in args.source:
        role, _, path = item.rpartition("=")
        if not role:
            if len(sources) != 1:
                raise ConfigError(
                    f"--source {item}: {table.name} has several sources "
                    f"({', '.join(sources)}); write ROLE=DIR"
                )
            role = sources[0]
        if role not in sources:
            raise ConfigError(
                f"--source {item}: {table.name} has no source {role!r}; it has {', '.join(sources)}"
            )
        out[role] = resolve_dataset(path, f"--source {role}")
    paths: dict[str, set] = {}
    for d in out.values():
        paths.setdefault(d.key, set()).add(d.path)
    # folders are named by the manifest's name: two datasets of one name get their role too
    return {
        r: Dataset(f"{d.key}-{r}", d.path) if len(paths[d.key]) > 1 else d for r, d in out.items()
    }


def cmd_run(args, argv: list[str]) -> int:
    # Everything is checked, and every cell expanded and validated, before Ray starts.
    preset = get_preset(args.preset)
    tables = [get_table(t) for t in dict.fromkeys(args.tables)]
    pre_set, eval_set = parse_set_args(args.set), parse_set_args(args.eval_set)
    from ablations.run import check_benchmarks, check_out, run_plans, start
    from tune.cluster import worker_gpus

    worker_gpus(args.use_gpu, args.gpus_per_worker)  # --gpus-per-worker without --use-gpu

    plans = []
    for t in tables:
        plan = expand(
            t,
            preset,
            datasets_for(t, args),
            seeds=args.seeds,
            backbones=args.backbones,
            pre_set=pre_set,
            eval_set=eval_set,
        )
        check_benchmarks(plan)
        if not plan.cells:
            raise ConfigError(
                f"{t.name}: no row can run: {'; '.join(s['reason'] for s in plan.skipped)}"
            )
        plans.append(plan)
    out = Path(args.out or f"runs/ablations/{preset.name}").expanduser().resolve()
    datasets = {d.key: d for p in plans for d in (_ds(x) for x in p.datasets.values())}
    meta = check_out(out, preset, pre_set, eval_set, datasets)
    for plan in plans:
        n_pre, n_ev = len(plan.pretrainings()), len(plan.evaluations())
        print(
            f"{plan.table}: {len(plan.cells)} cells ({len(plan.seeds)} seeds, backbones "
            f"{', '.join(plan.backbones)}): {n_pre} pretrainings, {n_ev} evaluations"
        )
        for s in plan.skipped:
            print(f"  row {s['row']!r} {s['column']} not run: {s['reason']}")
        if args.dry_run:
            for c in plan.cells:
                init = (
                    c.pretrain.name if c.pretrain else ("supervised" if c.supervised else "scratch")
                )
                print(
                    f"  {c.row} {c.column} {c.backbone} seed {c.seed}: {init} -> {c.evaluation.dir}"
                )
    if args.dry_run:
        return 0
    start(out, meta, plans, ["python -m ablations", *argv])
    rc = run_plans(
        plans,
        out,
        preset,
        pre_set,
        address=args.address,
        workers_per_trial=args.workers_per_trial,
        cpus_per_worker=args.cpus_per_worker,
        use_gpu=args.use_gpu,
        gpus_per_worker=args.gpus_per_worker,
        progress=not args.no_progress,
    )
    if rc == 2:
        return 2
    if rc == 130:  # no report either: it would be rendered from half a table
        return interrupted()
    from ablations.report import write_report

    md, html = write_report(out, out / "report")
    print(f"report: {md}\n        {html}")
    return rc


def _ds(d: dict) -> Dataset:
    return Dataset(**d)


def cmd_report(args) -> int:
    from ablations.report import write_report

    runs = Path(args.runs)
    if not (runs / "tables").is_dir():
        raise ConfigError(
            f"--runs {runs} holds no ablation runs (no tables/ folder); give "
            f"the --out of python -m ablations run"
        )
    md, html = write_report(runs, Path(args.out) if args.out else runs / "report")
    print(f"report: {md}\n        {html}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    sys.exit(main())
