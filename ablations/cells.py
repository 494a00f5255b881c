"""A table spec expanded into cells: row x backbone x seed, each a pretraining (or none) and
a downstream evaluation, with names made from their configuration.

Runs are named by what they compute, not by the table that asks for them: a pretraining is
a grid cell named by its overrides of the preset's base config (tune.trial.cell_name), an
evaluation is a folder named by its initialisation and its overrides of the preset's
evaluation config. So rows that share a configuration (Table 2's last row is Table 1's
"triplet only"; every table's "w/o pre-training") share one run, within a table and across
tables run into the same output folder.

Output folder layout (OUT):
    pretrain/DATASET/         the sweep engine's grid folder: cells/NAME.json, trials/NAME/
    eval/DATASET/scratch/EVAL                  fine-tuning from a random initialisation
    eval/DATASET/pretrain-SOURCE/NAME/EVAL     from the grid cell NAME pretrained on SOURCE
    eval/DATASET/supervised-SOURCE/EVAL0/EVAL  from the supervised run eval/SOURCE/scratch/EVAL0
    tables/TABLE.json          the plan: which runs make which table cell (the report's index)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ablations.presets import Preset
from ablations.specs import Row, Table
from mcc import presets as mcc_presets
from mcc.config import (
    CHOICES,
    ConfigError,
    EvalConfig,
    PretrainConfig,
    apply_overrides,
    flatten,
    to_dict,
)
from tune.trial import cell_name

EVALUATED = "data"  # role of the evaluated dataset in tables without roles
TARGET = "target"  # ... and in the transfer tables


@dataclass(frozen=True)
class Dataset:
    """A prepared dataset: `key` (its manifest's name) names its folders under OUT."""

    key: str
    path: str


@dataclass
class Pretraining:
    """One cell of the sweep engine's grid: `params` override the preset's base config."""

    dataset: str
    name: str
    params: dict

    def folder(self, out: Path) -> Path:
        return Path(out) / "pretrain" / self.dataset

    def cell_file(self, out: Path) -> Path:
        return self.folder(out) / "cells" / f"{self.name}.json"

    def trial_dir(self, out: Path) -> Path:
        return self.folder(out) / "trials" / self.name


@dataclass
class Evaluation:
    """One `mcc.evaluate.evaluate` run: `overrides` rebuild its EvalConfig, `init` says
    where its encoder comes from (scratch | pretrain | supervised), `dir` is relative to OUT."""

    dir: str
    overrides: dict
    init: str
    dataset: str

    def config(self) -> EvalConfig:
        return apply_overrides(EvalConfig(), self.overrides)


@dataclass
class Cell:
    table: str
    row: str
    column: str
    backbone: str
    seed: int
    evaluation: Evaluation
    pretrain: Pretraining | None = None
    supervised: Evaluation | None = None  # Table 7: the supervised run on the source


@dataclass
class Plan:
    """A table expanded for one run: its cells and the rows it could not run."""

    table: str
    preset: str
    seeds: list[int]
    backbones: list[str]
    datasets: dict[str, dict]  # role -> {"key", "path"}
    cells: list[Cell] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"row", "column", "reason"}

    def pretrainings(self) -> list[Pretraining]:
        """The distinct grid cells, in plan order."""
        seen: dict[tuple, Pretraining] = {}
        for c in self.cells:
            if c.pretrain is not None:
                seen.setdefault((c.pretrain.dataset, c.pretrain.name), c.pretrain)
        return list(seen.values())

    def evaluations(self) -> list[Evaluation]:
        """The distinct evaluations, each after the runs it starts from."""
        seen: dict[str, Evaluation] = {}
        for c in self.cells:
            if c.supervised is not None:
                seen.setdefault(c.supervised.dir, c.supervised)
        for c in self.cells:
            seen.setdefault(c.evaluation.dir, c.evaluation)
        return list(seen.values())

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Plan:
        cells = []
        for c in d["cells"]:
            c = dict(c)
            c["evaluation"] = Evaluation(**c["evaluation"])
            c["pretrain"] = Pretraining(**c["pretrain"]) if c.get("pretrain") else None
            c["supervised"] = Evaluation(**c["supervised"]) if c.get("supervised") else None
            cells.append(Cell(**c))
        return cls(**{**d, "cells": cells})


def available_backbones() -> tuple[str, ...]:
    """The backbones the config offers now (mcc.config.CHOICES)."""
    return tuple(CHOICES["model.backbone"])


def table_backbones(table: Table, preset: Preset, asked: list[str] | None) -> list[str]:
    """The backbones a table runs: the asked ones (or the preset's, or every available one),
    kept to those the table varies over (Tables 2, 3, 6 are ST-GCN only)."""
    have = available_backbones()
    wanted = list(asked or preset.backbones or have)
    bad = [b for b in wanted if b not in have]
    if bad:
        raise ConfigError(
            f"backbone {bad[0]!r} is not available; model.backbone offers {', '.join(have)}"
        )
    allowed = table.backbones or have
    return [b for b in wanted if b in allowed]


def evaluated_role(table: Table) -> str:
    return TARGET if TARGET in table.roles else EVALUATED


def _diff(cfg, base, always: tuple[str, ...]) -> dict:
    """The keys where `cfg` differs from `base` (plus `always`), JSON-typed, sorted: the same
    dict, and so the same name, whichever way the overrides were written."""
    a, b = flatten(to_dict(cfg)), flatten(to_dict(base))
    keys = sorted(k for k in a if a[k] != b[k] or k in always)
    return json.loads(json.dumps({k: a[k] for k in keys}))


def pretrain_base(preset: Preset, ds: Dataset, pre_set: dict) -> PretrainConfig:
    """The grid's base config on `ds`, as tune/sweep.py builds it from `--preset paper` (the
    defaults) and the `--set` overrides the runner passes (grid_sets)."""
    return apply_overrides(
        PretrainConfig(),
        {**mcc_presets.PRETRAIN["paper"], "data.path": ds.path, **grid_sets(preset, pre_set)},
    )


def grid_sets(preset: Preset, pre_set: dict) -> dict:
    return {**preset.pretrain, **pre_set}


def eval_base(preset: Preset, ds: Dataset, pre: PretrainConfig, eval_set: dict) -> dict:
    """Evaluation overrides shared by every evaluation on `ds` (mcc.presets.evaluation's
    rule: the same normalisation, benchmark and, without a checkpoint, pretraining width)."""
    return {
        **preset.evaluate,
        "data.path": ds.path,
        "data.normalize": pre.data.normalize,
        "data.benchmark": pre.data.benchmark,
        "model.width": pre.model.width,
        **eval_set,
    }


def _evaluation(
    base: dict, extra: dict, eval_set: dict, init: str, parent: str, ds: str
) -> Evaluation:
    overrides = json.loads(json.dumps({**base, **extra, **eval_set}))
    cfg = apply_overrides(EvalConfig(), overrides)
    name = cell_name(_diff(cfg, apply_overrides(EvalConfig(), base), ALWAYS_EVAL))
    return Evaluation(f"eval/{ds}/{parent}/{name}", overrides, init, ds)


ALWAYS_PRETRAIN = ("model.backbone", "seed")
ALWAYS_EVAL = ("model.backbone", "seed", "protocol")


def expand(
    table: Table,
    preset: Preset,
    datasets: dict[str, Dataset],
    *,
    seeds: list[int] | None = None,
    backbones: list[str] | None = None,
    pre_set: dict | None = None,
    eval_set: dict | None = None,
) -> Plan:
    """Every cell of `table` under `preset`: rows x backbones x seeds. `datasets` maps the
    table's roles ("data", or "target" and sources such as "ntu60") to prepared datasets; a
    row whose source is not given is listed in `skipped`. Every configuration is validated
    here (ConfigError), before anything runs."""
    pre_set, eval_set = dict(pre_set or {}), dict(eval_set or {})
    if "data.path" in pre_set or "data.path" in eval_set:
        raise ConfigError("data.path comes from --data / --target / --source, not --set")
    seeds = list(seeds if seeds is not None else table.seeds or preset.seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {seeds}: give one or more distinct seeds")
    bbs = table_backbones(table, preset, backbones)
    if not bbs:
        raise ConfigError(
            f"{table.name} runs on {', '.join(table.backbones or ())} only; "
            f"none of them was asked for"
        )
    role = evaluated_role(table)
    if role not in datasets:
        raise ConfigError(f"{table.name} needs the evaluated dataset ({role})")
    plan = Plan(
        table.name, preset.name, seeds, bbs, {r: dataclasses.asdict(d) for r, d in datasets.items()}
    )
    target = datasets[role]
    target_pre = pretrain_base(preset, target, pre_set)
    target_eval = eval_base(preset, target, target_pre, eval_set)
    for row in table.rows:
        source_role = role if row.source in ("", TARGET) else row.source
        if (row.pretrain is not None or row.supervised) and source_role not in datasets:
            plan.skipped.append(
                {
                    "row": row.label,
                    "column": row.column,
                    "reason": f"needs --source {source_role}=DIR "
                    f"({table.roles.get(source_role, source_role)})",
                }
            )
            continue
        source = datasets.get(source_role, target)
        for b in bbs:
            for s in seeds:
                plan.cells.append(
                    _cell(
                        table,
                        row,
                        preset,
                        b,
                        s,
                        target,
                        source,
                        target_eval,
                        pre_set,
                        eval_set,
                        same=source_role == role,
                    )
                )
    return plan


def _cell(
    table: Table,
    row: Row,
    preset: Preset,
    backbone: str,
    seed: int,
    target: Dataset,
    source: Dataset,
    target_eval: dict,
    pre_set: dict,
    eval_set: dict,
    same: bool,
) -> Cell:
    common = {"model.backbone": backbone, "seed": seed}
    bench = {"data.benchmark": row.benchmark} if row.benchmark else {}
    # protocol=transfer fine-tunes a checkpoint from another dataset; from scratch, or from
    # the target itself, the same fine-tuning is protocol=finetune (mcc.evaluate).
    pretrained = row.pretrain is not None or row.supervised
    protocol = table.protocol
    if protocol == "transfer" and not (pretrained and not same):
        protocol = "finetune"
    extra = {**common, "protocol": protocol, **row.evaluate}
    pre = pretrain_base(preset, source, pre_set)
    if row.supervised:  # Table 7: supervised on the source from scratch, then fine-tuned
        sup_base = eval_base(preset, source, pre, eval_set)
        sup = _evaluation(
            sup_base,
            {**common, "protocol": "finetune", **bench},
            eval_set,
            "scratch",
            "scratch",
            source.key,
        )
        parent = f"supervised-{source.key}/{Path(sup.dir).name}"
        ev = _evaluation(target_eval, extra, eval_set, "supervised", parent, target.key)
        return Cell(table.name, row.label, row.column, backbone, seed, ev, supervised=sup)
    if row.pretrain is None:
        ev = _evaluation(target_eval, extra, eval_set, "scratch", "scratch", target.key)
        return Cell(table.name, row.label, row.column, backbone, seed, ev)
    cfg = apply_overrides(pre, {**table.base, **row.pretrain, **common, **bench})
    params = _diff(cfg, pre, ALWAYS_PRETRAIN)
    p = Pretraining(source.key, cell_name(params), params)
    ev = _evaluation(
        target_eval, extra, eval_set, "pretrain", f"pretrain-{source.key}/{p.name}", target.key
    )
    return Cell(table.name, row.label, row.column, backbone, seed, ev, pretrain=p)


def placeholder_datasets(table: Table) -> dict[str, Dataset]:
    """Stand-ins for every role of a table (costs in `list`, tests): nothing is read."""
    roles = [evaluated_role(table), *(r for r in table.roles if r != TARGET)]
    return {r: Dataset(r, f"/datasets/{r}") for r in roles}
