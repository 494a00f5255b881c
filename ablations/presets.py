"""How big an ablation run is: `smoke`, `small` and `paper`, built from mcc/presets.py.

A preset gives the pretraining overrides (on PretrainConfig; the sweep engine's grid runs
them), the evaluation overrides (on EvalConfig; the downstream protocol's recipe), the seeds
and the default backbones. Pretraining needs `data.val_fraction > 0`: the grid scores every
epoch by validation kNN (tune/sweep.py), so pretraining sees the training split less that
carve, and the downstream evaluation uses the whole training split.

What a preset costs (`python -m ablations list`) is estimated in ablations/costs.py from
rates measured per sample and epoch, not stored here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcc import presets as mcc_presets


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    pretrain: dict
    evaluate: dict
    seeds: tuple[int, ...]
    backbones: tuple[str, ...] | None = None  # None: every backbone the config offers


SMOKE = Preset(
    name="smoke",
    description="plumbing check, seconds per cell: width 0.125, 1 pretraining epoch, 1 "
    "fine-tuning epoch on 32 frames, 1 seed; its numbers mean nothing",
    pretrain={**mcc_presets.PRETRAIN["tiny"], "optim.epochs": 1, "data.val_fraction": 0.25},
    evaluate={**mcc_presets.EVALUATE["tiny"], "optim.epochs": 1, "frames": 32},
    seeds=(0,),
)

SMALL = Preset(
    name="small",
    description="a 2-core machine (`list` estimates the hours a table takes): width 0.125, "
    "8 pretraining epochs at a constant lr (the sweep's trials), 20 fine-tuning epochs "
    "(Adam), 3 seeds, ST-GCN",
    # pretraining as python tune/sweep.py's trials (FAST_START, 8 epochs at a constant lr:
    # a cosine decay left the slow seeds on InfoNCE's plateau, docs/method.md), with the
    # grid's carve at 10 % instead of the sweep's 20 %
    pretrain={**mcc_presets.PRETRAIN["sweep"], "data.val_fraction": 0.1},
    # 20 epochs: short fine-tuning from scratch can sit at chance for its first epochs, which
    # would hide any gain from pretraining; on the embedded default 20 epochs reach 98 %
    # (docs/findings.md, "The paper's Table 1 on the new default" and "Notes behind smaller
    # choices").
    evaluate={**mcc_presets.EVALUATE["demo"], "optim.epochs": 20},
    seeds=(0, 1, 2),
    backbones=("stgcn",),
)

PAPER = Preset(
    name="paper",
    description="the paper's recipe (Sec. 4.2, the backbones' own schedules: 80 epochs, SGD "
    "lr 0.1, batch 64, K 6536); 5 % of the training split carved for the grid's objective",
    pretrain={**mcc_presets.PRETRAIN["paper"], "data.val_fraction": 0.05},
    evaluate={**mcc_presets.EVALUATE["paper"]},
    seeds=(0, 1, 2),
)

PRESETS = {"smoke": SMOKE, "small": SMALL, "paper": PAPER}
