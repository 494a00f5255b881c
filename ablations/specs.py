"""The paper's Tables 1-7 as declared experiments: one small spec per table.

A table is a base configuration, rows (each a pretraining configuration, or None for
"w/o pre-training", plus optional evaluation overrides), the backbones it varies over, the
downstream protocol and metric, and the published numbers, transcribed from the paper (Su,
Lin and Wu, ICCV 2021) as docs/design.md reads it ("The paper's numbers"):
Tables 2 and 3 are ST-GCN only and single-loss runs (Table 2 rows use the triplet loss alone,
Table 3 rows the interpolation loss alone), Table 6 is ST-GCN only, Table 7 is re-read.

Every table reports fine-tune top-1 (%) on the test split after self-supervised pretraining
("Settings (1)", Sec. 4.2), except Table 5 (semi-supervised: 5 % / 10 % of the labels of
each class) and Tables 6 and 7 (pretrain on a source dataset, fine-tune on PKU-MMD).

Keys are the dotted config keys of `mcc.config` (`--set` names); a loss weight of 0
switches its term off (Eq. 4). Rows with the same pretraining configuration share one run
(ablations.cells names runs by their configuration, not by their table).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Published = tuple  # one number (or None: not in the paper) per entry of Table.paper_columns

# The paper's names of our backbones (model.backbone).
BACKBONE_NAMES = {"stgcn": "ST-GCN", "agcn": "2s-AGCN", "asgcn": "AS-GCN"}

# (dataset name in its manifest, data.benchmark) -> the paper's column, so the report can
# put our number beside the published one measured on the same data.
PAPER_COLUMN_OF = {
    ("ntu60", "xsub"): "NTU60 X-sub",
    ("ntu60", ""): "NTU60 X-sub",  # the importer's default benchmark is the first, xsub
    ("ntu60", "xview"): "NTU60 X-view",
    ("ntu120", "xsub"): "NTU120 X-sub",
    ("ntu120", ""): "NTU120 X-sub",
    ("ntu120", "xset"): "NTU120 X-setup",
    ("kinetics", ""): "Kinetics top-1",
    ("pkummd", ""): "PKU-MMD II",
    ("pkummd", "xsub"): "PKU-MMD II",
}


@dataclass(frozen=True)
class Row:
    """One row of a paper table.

    pretrain: overrides of the pretraining config on top of the table's base; None is the
    "w/o pre-training" row (fine-tuning from a random initialisation). evaluate: overrides of
    the evaluation config (e.g. label_fraction). column: the paper's column group the row
    belongs to (Table 5: "5 %" / "10 %"), "" when there is one. source / benchmark: where the
    pretraining runs when it is not the evaluated dataset (a dataset role of the table, and
    its data.benchmark). supervised: Table 7's "fully supervised": supervised training on the
    source, then fine-tuning on the target. paper: backbone -> published numbers, one per
    entry of the table's paper_columns."""

    label: str
    pretrain: dict | None
    paper: dict[str, Published] = field(default_factory=dict)
    evaluate: dict = field(default_factory=dict)
    column: str = ""
    source: str = ""
    benchmark: str = ""
    supervised: bool = False
    note: str = ""

    @property
    def is_baseline(self) -> bool:
        """The row deltas are measured against: no pretraining of any kind."""
        return self.pretrain is None and not self.supervised


@dataclass(frozen=True)
class Reference:
    """A published row of another method (other architectures): shown, not reproduced."""

    label: str
    architecture: str
    paper: Published


@dataclass(frozen=True)
class Table:
    """A paper table. backbones: the model.backbone values it varies over; None means every
    backbone the config offers at run time (mcc.config.CHOICES["model.backbone"]).
    protocol: the evaluation protocol (mcc.evaluate); metric: the result.json field shown.
    roles: the datasets it needs besides `--data`, role -> what the paper used (transfer
    tables: a target, the evaluated dataset, and pretraining sources). datasets: the
    datasets the paper ran it on (manifest names; the tables run on any labelled dataset).
    seeds: None takes the preset's."""

    name: str
    title: str
    rows: tuple[Row, ...]
    paper_columns: tuple[str, ...]
    datasets: tuple[str, ...]
    base: dict = field(default_factory=dict)
    backbones: tuple[str, ...] | None = None
    protocol: str = "finetune"
    metric: str = "top1"
    seeds: tuple[int, ...] | None = None  # None: the preset's
    roles: dict[str, str] = field(default_factory=dict)
    references: tuple[Reference, ...] = ()
    note: str = ""

    def row(self, label: str, column: str = "") -> Row:
        for r in self.rows:
            if r.label == label and r.column == column:
                return r
        raise KeyError(f"{self.name} has no row {label!r} (column {column!r})")

    def columns(self) -> list[str]:
        """The rows' column groups, in order of first appearance."""
        return list(dict.fromkeys(r.column for r in self.rows))

    def labels(self) -> list[str]:
        return list(dict.fromkeys(r.label for r in self.rows))

    def baseline(self, column: str = "") -> Row | None:
        return next((r for r in self.rows if r.is_baseline and r.column == column), None)


# Loss terms (Eq. 4): lambda_1 triplet, lambda_2 NCE, lambda_3 interpolation; 0 = off.
TRIPLET_ONLY = {"loss.nce": 0, "loss.interp": 0}
NCE_ONLY = {"loss.triplet": 0, "loss.interp": 0}
INTERP_ONLY = {"loss.triplet": 0, "loss.nce": 0}
MCC: dict = {}  # all three terms, weight 1 (the defaults)

NTU60 = ("NTU60 X-sub", "NTU60 X-view")
BIG = (
    "NTU60 X-sub",
    "NTU60 X-view",
    "NTU120 X-sub",
    "NTU120 X-setup",
    "Kinetics top-1",
    "Kinetics top-5",
)
PKU = ("PKU-MMD II",)
_ = None  # not in the paper

# The "w/o pre-training" ST-GCN / 2s-AGCN / AS-GCN numbers on NTU60 (Table 1). Tables 2-4
# print no such row; the same fine-tuning from scratch is their baseline, so it is repeated
# there (the evaluation runs once: its configuration is the same).
SCRATCH_NTU60 = {"stgcn": (81.5, 88.3), "agcn": (88.5, 95.1), "asgcn": (86.8, 94.2)}


TABLE1 = Table(
    name="table1",
    title="Table 1. Pretext losses: fine-tune top-1 after pre-training on the same dataset",
    paper_columns=NTU60,
    datasets=("ntu60",),
    rows=(
        Row("w/o pre-training", None, SCRATCH_NTU60),
        Row(
            "L_triplet only",
            TRIPLET_ONLY,
            {"stgcn": (82.3, 89.2), "agcn": (89.2, 95.9), "asgcn": (87.6, 94.9)},
        ),
        Row(
            "L_NCE only",
            NCE_ONLY,
            {"stgcn": (81.8, 88.7), "agcn": (89.0, 95.7), "asgcn": (87.2, 94.5)},
        ),
        Row(
            "L_Itep only",
            INTERP_ONLY,
            {"stgcn": (82.5, 89.4), "agcn": (89.3, 95.9), "asgcn": (87.6, 95.0)},
        ),
        Row(
            "L_triplet + L_NCE",
            {"loss.interp": 0},
            {"stgcn": (82.6, 89.5), "agcn": (89.4, 96.0), "asgcn": (88.0, 95.1)},
        ),
        Row(
            "L_triplet + L_NCE + L_Itep (MCC)",
            MCC,
            {"stgcn": (83.0, 89.7), "agcn": (89.7, 96.3), "asgcn": (88.4, 95.5)},
        ),
    ),
)

TABLE2 = Table(
    name="table2",
    title="Table 2. Motion pairs (positive / negative), triplet loss alone, ST-GCN",
    paper_columns=NTU60,
    datasets=("ntu60",),
    base=TRIPLET_ONLY,
    backbones=("stgcn",),
    rows=(
        Row(
            "w/o pre-training",
            None,
            {"stgcn": SCRATCH_NTU60["stgcn"]},
            note="not printed in Table 2; Table 1's ST-GCN row",
        ),
        Row("S-changed / M-jittered", {"sampling.negative": "jitter"}, {"stgcn": (81.9, 88.6)}),
        Row("S-changed / V-transformed", {"sampling.negative": "view"}, {"stgcn": (81.7, 88.7)}),
        Row("- / M-shuffled", {"sampling.positive": "none"}, {"stgcn": (81.8, 88.6)}),
        Row(
            "S-changed / M-shuffled", {}, {"stgcn": (82.3, 89.2)}, note="= Table 1, L_triplet only"
        ),
    ),
)

TABLE3 = Table(
    name="table3",
    title="Table 3. Motion continuity: interpolation loss alone, ST-GCN",
    paper_columns=NTU60,
    datasets=("ntu60",),
    base=INTERP_ONLY,
    backbones=("stgcn",),
    rows=(
        Row(
            "w/o pre-training",
            None,
            {"stgcn": SCRATCH_NTU60["stgcn"]},
            note="not printed in Table 3; Table 1's ST-GCN row",
        ),
        Row(
            "Direct reconstruction", {"loss.interp_target": "reconstruct"}, {"stgcn": (82.0, 88.8)}
        ),
        Row(
            "Specific rate interpolation",
            {},
            {"stgcn": (82.5, 89.4)},
            note="= Table 1, L_Itep only",
        ),
    ),
)

TABLE4 = Table(
    name="table4",
    title="Table 4. MCC against other self-supervised pretexts on the same backbones",
    paper_columns=BIG,
    datasets=("ntu60", "ntu120", "kinetics"),
    rows=(
        Row(
            "w/o pre-training",
            None,
            {b: (*v, _, _, _, _) for b, v in SCRATCH_NTU60.items()},
            note="not printed in Table 4; Table 1's rows (NTU60 only)",
        ),
        Row(
            "Clip order prediction",
            {"pretext": "order"},
            {
                "stgcn": (82.1, 88.6, 76.0, 76.8, 31.3, 53.5),
                "agcn": (89.0, 95.8, 80.6, 82.5, 36.8, 59.7),
                "asgcn": (87.5, 94.9, 78.4, 80.0, 35.6, 57.4),
            },
        ),
        Row(
            "Jigsaw puzzle recognition",
            {"pretext": "jigsaw"},
            {
                "stgcn": (81.8, 89.0, 76.3, 77.1, 31.7, 53.8),
                "agcn": (88.8, 95.4, 80.8, 82.4, 36.6, 59.4),
                "asgcn": (87.1, 94.6, 78.6, 79.9, 35.8, 57.7),
            },
        ),
        Row(
            "Pace prediction",
            {"pretext": "pace"},
            {
                "stgcn": (81.5, 88.8, 75.8, 75.9, 31.3, 53.6),
                "agcn": (89.2, 95.6, 80.3, 82.1, 36.3, 59.1),
                "asgcn": (87.3, 95.0, 78.0, 79.8, 35.2, 57.0),
            },
        ),
        Row(
            "MCC (ours)",
            MCC,
            {
                "stgcn": (83.0, 89.7, 77.0, 77.8, 32.3, 54.6),
                "agcn": (89.7, 96.3, 81.3, 83.3, 38.1, 60.8),
                "asgcn": (88.4, 95.5, 79.4, 80.8, 36.4, 58.6),
            },
        ),
    ),
    references=(
        Reference("LongT GAN (AAAI'18)", "unidirectional GRUs", (_, 49.6, _, _, _, _)),
        Reference("MS2L (ACMMM'20)", "BiGRU", (78.8, 81.8, _, _, _, _)),
        Reference("VPD (ECCV'20)", "SeBiReNet", (_, 81.4, _, _, _, _)),
    ),
)

# Table 5's columns: the labelled fraction of each class; the paper's datasets per fraction.
SEMI_5 = {"label_fraction": 0.05}
SEMI_10 = {"label_fraction": 0.10}

TABLE5 = Table(
    name="table5",
    title="Table 5. Semi-supervised: fine-tune on 5 % / 10 % of the labels of each class",
    paper_columns=BIG,
    datasets=("ntu60", "ntu120", "kinetics"),
    protocol="semi",
    rows=(
        Row(
            "w/o pre-training",
            None,
            column="5 %",
            evaluate=SEMI_5,
            paper={
                "stgcn": (38.2, 40.4, 25.3, 27.1, _, _),
                "agcn": (43.5, 49.1, 29.2, 30.8, _, _),
                "asgcn": (41.1, 44.7, 27.4, 28.9, _, _),
            },
        ),
        Row(
            "+MCC",
            MCC,
            column="5 %",
            evaluate=SEMI_5,
            paper={
                "stgcn": (42.4, 44.7, 29.7, 31.3, _, _),
                "agcn": (47.4, 53.3, 33.8, 35.1, _, _),
                "asgcn": (45.5, 49.2, 31.6, 32.9, _, _),
            },
        ),
        Row(
            "w/o pre-training",
            None,
            column="10 %",
            evaluate=SEMI_10,
            paper={
                "stgcn": (52.4, 56.9, 37.6, 40.1, 11.9, 28.6),
                "agcn": (57.2, 62.0, 44.1, 48.7, 18.6, 34.8),
                "asgcn": (55.7, 59.5, 41.2, 44.6, 17.1, 33.7),
            },
        ),
        Row(
            "+MCC",
            MCC,
            column="10 %",
            evaluate=SEMI_10,
            paper={
                "stgcn": (55.6, 59.9, 40.7, 43.4, 14.8, 32.2),
                "agcn": (60.8, 65.8, 47.0, 51.8, 21.3, 37.9),
                "asgcn": (59.2, 63.1, 44.9, 47.8, 20.2, 37.5),
            },
        ),
    ),
)

# Transfer (Sec. 4.4, "Fine-tuning on downstream tasks"): pretrain on a source, fine-tune
# and score on the target (PKU-MMD part II in the paper). Role "target" is the evaluated
# dataset; a row whose source is "target" pretrains on the target itself.
TRANSFER_ROLES = {
    "target": "PKU-MMD part II (fine-tuned and scored)",
    "ntu60": "NTU RGB+D 60 (benchmarks xsub, xview)",
    "ntu120": "NTU RGB+D 120 (benchmarks xsub, xset)",
}

TABLE6 = Table(
    name="table6",
    title="Table 6. Pre-training dataset for fine-tuning on PKU-MMD part II, ST-GCN",
    paper_columns=PKU,
    datasets=("pkummd", "ntu60", "ntu120"),
    protocol="transfer",
    backbones=("stgcn",),
    roles=TRANSFER_ROLES,
    rows=(
        Row("w/o pre-training", None, {"stgcn": (48.2,)}),
        Row("PKU-MMD", MCC, {"stgcn": (49.6,)}, source="target"),
        Row("NTU60 X-view", MCC, {"stgcn": (51.8,)}, source="ntu60", benchmark="xview"),
        Row("NTU60 X-sub", MCC, {"stgcn": (52.7,)}, source="ntu60", benchmark="xsub"),
        Row("NTU120 X-setup", MCC, {"stgcn": (50.5,)}, source="ntu120", benchmark="xset"),
        Row("NTU120 X-sub", MCC, {"stgcn": (54.5,)}, source="ntu120", benchmark="xsub"),
    ),
)

TABLE7 = Table(
    name="table7",
    title="Table 7. Transfer to PKU-MMD part II: w/o pre-training, fully supervised, MCC",
    paper_columns=PKU,
    datasets=("pkummd", "ntu120"),
    protocol="transfer",
    roles={"target": TRANSFER_ROLES["target"], "ntu120": TRANSFER_ROLES["ntu120"]},
    note="The source is NTU120 X-sub: the paper's MCC ST-GCN number (54.5) is Table 6's "
    "NTU120 X-sub row.",
    rows=(
        Row("w/o pre-training", None, {"stgcn": (48.2,), "agcn": (54.6,), "asgcn": (52.8,)}),
        Row(
            "Fully supervised",
            None,
            {"stgcn": (60.5,), "agcn": (66.8,), "asgcn": (65.4,)},
            source="ntu120",
            benchmark="xsub",
            supervised=True,
        ),
        Row(
            "MCC (ours)",
            MCC,
            {"stgcn": (54.5,), "agcn": (60.8,), "asgcn": (58.4,)},
            source="ntu120",
            benchmark="xsub",
        ),
    ),
    references=(
        Reference("LongT GAN (self-supervised)", "unidirectional GRUs", (44.8,)),
        Reference("MS2L (self-supervised)", "BiGRU", (45.8,)),
        Reference("w/o pre-training: LongT GAN (reproduced)", "unidirectional GRUs", (43.1,)),
        Reference("w/o pre-training: MS2L", "BiGRU", (45.7,)),
        Reference("Fully supervised: LongT GAN (reproduced)", "unidirectional GRUs", (48.4,)),
        Reference("Fully supervised: MS2L (reproduced)", "BiGRU", (49.8,)),
    ),
)

TABLES = {
    "table1": TABLE1,
    "table2": TABLE2,
    "table3": TABLE3,
    "table4": TABLE4,
    "table5": TABLE5,
    "table6": TABLE6,
    "table7": TABLE7,
}
