"""Configuration: frozen dataclasses with the paper's values as defaults (Sec. 4.2).

Overrides are dotted keys (`loss.tau=0.2`), checked against the dataclasses: an unknown key
is an error that lists the valid ones. The whole config is saved with every run and inside
every checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import TypeVar

Config = TypeVar("Config")  # one of the config dataclasses below


class ConfigError(ValueError):
    """A configuration value or key that is not allowed; the message says what is."""


@dataclass(frozen=True)
class DataConfig:
    path: str = "data/synthetic"  # a prepared dataset folder (Parquet shards + dataset.json)
    normalize: str = "center"  # none | center | center-align (transforms, not baked in shards)
    val_fraction: float = 0.0  # seeded validation split carved from train (model selection)
    val_seed: int = 0
    benchmark: str = ""  # e.g. xview on NTU60: which split column; "" = the dataset's default


@dataclass(frozen=True)
class SamplingConfig:
    clip_len: int = 32  # Sec. 3.1: 32 frames per clip
    speeds: tuple[int, ...] = (1, 2, 4, 8)  # Sec. 3.1 playback speeds
    overflow: str = "loop"  # loop (paper) | cap (lower r until the clip fits)
    positive: str = "speed"  # speed (S(r_j, c_j)) | none (Table 2 "no positive")
    negative: str = "shuffle"  # shuffle (B(r_k, c_k)) | jitter | view (Table 2)
    jitter_sigma: float = 0.05  # Table 2 M-jittered: Gaussian noise on coordinates
    view_max_degrees: float = 60.0  # Table 2 V-transformed: random rotation per axis
    # Beyond the paper (off by default): a random shear of each MCC clip's coordinates, its
    # own per clip (identity plus off-diagonals uniform in [-shear, shear]; SkeletonCLR and
    # AimCLR use 0.5), so that a sequence's fixed geometry (body, camera) no longer matches
    # its clips to each other.
    shear: float = 0.0
    # Beyond the paper (off by default): a sequence shorter than min_frames is stretched to
    # min_frames (linear interpolation in time) before its clips are drawn, so that short
    # clips keep their speed-changed views. On NW-UCLA (median 31 frames) 86 % of sequences
    # cannot give a 32-frame clip at speed 2; min_frames=64 lets every one do so.
    min_frames: int = 0


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "stgcn"  # stgcn | agcn (2s-AGCN, one stream) | asgcn (AS-GCN)
    stream: str = "joint"  # joint | bone (2s-AGCN's bone stream; any backbone): one per model
    width: float = 1.0  # channel multiplier: 1.0 is the published 64..256 ST-GCN
    embed_dim: int = 128  # projection head output
    dropout: float = 0.0
    edge_importance: bool = True


@dataclass(frozen=True)
class LossConfig:
    triplet: float = 1.0  # lambda_1 (Eq. 4)
    nce: float = 1.0  # lambda_2
    interp: float = 1.0  # lambda_3
    margin: float = 0.15  # gamma (Eq. 1)
    tau: float = 0.5  # temperature (Eq. 2)
    queue_size: int = 6536  # K, memory bank size
    momentum: float = 0.999  # key encoder EMA
    interp_rate: int = 2  # l (Sec. 3.2)
    interp_target: str = "interpolate"  # interpolate | reconstruct (Table 3)
    slow_rule: str = "hold"  # hold | tile (paper's literal r < l rule) | exact (l must divide r)


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "sgd"  # sgd (the paper's) | adam (small data: see docs/method.md)
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 64
    epochs: int = 80  # ST-GCN's NTU recipe: 80 epochs, lr x0.1 at 10 and 50
    schedule: str = "step"  # step | cosine | constant
    milestones: tuple[int, ...] = (10, 50)
    warmup_epochs: int = 0


@dataclass(frozen=True)
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    threads: int = 0  # torch threads; 0 keeps torch's default
    # auto (bf16 autocast on a GPU that has it, else fp16 with a gradient scaler; fp32 on the
    # CPU) | fp32 | bf16 | fp16: mcc/device.py
    precision: str = "auto"
    # The pretraining objective: mcc (Eq. 4) or one of Table 4's comparison pretexts, on the
    # same backbone and clip sampler: order (which of the 6 orders of 3 shuffled segments),
    # jigsaw (which of the 24 arrangements of 2 body regions x 2 time halves), pace (which of
    # sampling.speeds). The comparison pretexts ignore loss.* (MCC's terms).
    pretext: str = "mcc"


@dataclass(frozen=True)
class EvalConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # used when no checkpoint is given
    optim: OptimConfig = field(default_factory=OptimConfig)
    # knn | linear | finetune | semi (finetune on label_fraction < 1 of each class) |
    # transfer (finetune a checkpoint from another dataset; Tables 6, 7)
    protocol: str = "finetune"
    frames: int = 64  # classifier input: whole sequence resampled to this many frames
    crop_min: float = 0.5  # training crop-and-resize keeps at least this share of frames
    knn_k: int = 20
    # linear protocol: the classifier's learning rate (0: optim.lr). The linear layer sees
    # standardised features (mcc.models.Classifier), so one value suits every encoder.
    linear_lr: float = 0.0
    # protocols that train the encoder: the linear layer starts at random (random) or as the
    # linear protocol's layer fitted on the frozen encoder first, then everything is trained
    # for the full schedule (probe; LP-FT, Kumar et al. 2022)
    head_init: str = "random"
    label_fraction: float = 1.0  # per class, round(fraction * count), at least 1
    # test | val: score on the data.val_fraction carve of the training split instead of the
    # test split (the labelled data is then the rest of the training split): for choosing a
    # recipe without looking at the test split
    scored: str = "test"
    seed: int = 0
    threads: int = 0
    precision: str = "auto"  # of the training steps, as PretrainConfig's; scoring runs in fp32


# Settings that say how a run computes, not what it computes: a run resumed, or a finished
# one reused, with other values of these is the same experiment (mcc.runs.finished_run,
# mcc.train.restore_training); each run records the values it used.
EXECUTION = ("threads", "precision")

CHOICES: dict[str, tuple[str, ...]] = {
    "data.normalize": ("none", "center", "center-each", "center-align"),
    "sampling.overflow": ("loop", "cap"),
    "sampling.positive": ("speed", "none"),
    "sampling.negative": ("shuffle", "jitter", "view"),
    "model.backbone": ("stgcn", "agcn", "asgcn"),
    "model.stream": ("joint", "bone"),
    "loss.interp_target": ("interpolate", "reconstruct"),
    "loss.slow_rule": ("hold", "tile", "exact"),
    "optim.schedule": ("step", "cosine", "constant"),
    "optim.optimizer": ("sgd", "adam"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "protocol": ("knn", "linear", "finetune", "semi", "transfer"),
    "scored": ("test", "val"),
    "head_init": ("random", "probe"),
    "pretext": ("mcc", "order", "jigsaw", "pace"),
}


def to_dict(cfg: object) -> dict:
    return dataclasses.asdict(cfg)


def valid_keys(cls: type) -> list[str]:
    """All dotted keys of a config class."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            keys += [f"{f.name}.{k}" for k in valid_keys(t)]
        else:
            keys.append(f.name)
    return keys


def _parse_value(key: str, text, typ):
    """Parse `text` (a string from the command line, or a JSON value) as `typ`."""
    origin = typing.get_origin(typ)
    try:
        if origin is tuple:
            (inner, _) = typing.get_args(typ)
            if isinstance(text, str):
                items = [s for s in text.strip("()[] ").split(",") if s.strip()]
            else:
                items = list(text)
            return tuple(_parse_value(key, s, inner) for s in items)
        if typ is bool:
            if isinstance(text, bool):
                return text
            low = str(text).strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(text, float) and not text.is_integer():
                raise ValueError
            if isinstance(text, str) and not text.strip().lstrip("-").isdigit():
                raise ValueError
            return int(text)
        if typ is float:
            return float(text)
        return str(text)
    except (ValueError, TypeError):
        name = getattr(typ, "__name__", str(typ))
        raise ConfigError(f"{key}: cannot read {text!r} as {name}") from None


def apply_overrides(cfg: Config, overrides: dict) -> Config:
    """Return a copy of `cfg` with dotted-key overrides applied and the result validated."""
    valid = valid_keys(type(cfg))
    for key, value in overrides.items():
        if key not in valid:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(valid)}")
        cfg = _set(cfg, key.split("."), value, key)
    validate(cfg)
    return cfg


def _set(obj, path: list[str], value, full_key: str):
    hints = typing.get_type_hints(type(obj))
    name = path[0]
    if len(path) == 1:
        return dataclasses.replace(obj, **{name: _parse_value(full_key, value, hints[name])})
    child = _set(getattr(obj, name), path[1:], value, full_key)
    return dataclasses.replace(obj, **{name: child})


def parse_set_args(items: list[str] | None) -> dict[str, str]:
    """['a.b=1', ...] -> {'a.b': '1'}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def from_dict(cls: type[Config], d: dict) -> Config:
    """Rebuild a config from its saved dict (config.json, checkpoints)."""
    return apply_overrides(cls(), flatten(d))


def validate(cfg: object) -> None:
    """Check choices and ranges; raise ConfigError naming the value and what is allowed."""
    flat = flatten(to_dict(cfg))
    for key, value in flat.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value} is not a finite number")
    for key, allowed in CHOICES.items():
        if key in flat and flat[key] not in allowed:
            raise ConfigError(f"{key}={flat[key]!r} is not allowed; choose one of {allowed}")
    if "sampling.speeds" in flat:
        speeds = flat["sampling.speeds"]
        if not speeds or any(int(s) != s or s < 1 for s in speeds):
            raise ConfigError(f"sampling.speeds={speeds}: speeds must be positive integers")
        if len(set(speeds)) < 2 and flat.get("pretext") == "pace":
            raise ConfigError(
                f"sampling.speeds={speeds}: pretext=pace classifies the speed; it needs at "
                f"least two speeds"
            )
        mcc = flat.get("pretext", "mcc") == "mcc"
        if len(set(speeds)) < 2 and mcc and flat["sampling.positive"] == "speed":
            raise ConfigError(
                f"sampling.speeds={speeds}: a speed-changed positive needs at least two speeds"
            )
    positive = {
        "sampling.clip_len": 1,
        "loss.queue_size": 1,
        "loss.interp_rate": 1,
        "optim.batch_size": 1,
        "optim.epochs": 0,
        "frames": 1,
        "knn_k": 1,
        "model.embed_dim": 1,
    }
    for key, lowest in positive.items():
        if key in flat and flat[key] < lowest:
            raise ConfigError(f"{key}={flat[key]} must be >= {lowest}")
    for key in ("loss.triplet", "loss.nce", "loss.interp", "loss.margin", "optim.lr", "linear_lr",
                "sampling.shear", "sampling.min_frames"):  # fmt: skip
        if key in flat and flat[key] < 0:
            raise ConfigError(f"{key}={flat[key]} must be >= 0")
    for key in ("loss.tau", "model.width"):
        if key in flat and flat[key] <= 0:
            raise ConfigError(f"{key}={flat[key]} must be > 0")
    if "loss.momentum" in flat and not 0 <= flat["loss.momentum"] < 1:
        raise ConfigError(f"loss.momentum={flat['loss.momentum']} must be in [0, 1)")
    if "label_fraction" in flat and not 0 < flat["label_fraction"] <= 1:
        raise ConfigError(f"label_fraction={flat['label_fraction']} must be in (0, 1]")
    if "data.val_fraction" in flat and not 0 <= flat["data.val_fraction"] < 1:
        raise ConfigError(f"data.val_fraction={flat['data.val_fraction']} must be in [0, 1)")
    if "crop_min" in flat and not 0 < flat["crop_min"] <= 1:
        raise ConfigError(f"crop_min={flat['crop_min']} must be in (0, 1]")
    if flat.get("protocol") == "semi" and not flat["label_fraction"] < 1:
        raise ConfigError(
            f"protocol=semi fine-tunes on a labelled fraction of each class: set "
            f"label_fraction in (0, 1), e.g. --set label_fraction=0.1 "
            f"(got {flat['label_fraction']})"
        )
    if isinstance(cfg, PretrainConfig) and cfg.pretext in ("order", "jigsaw"):
        least = {"order": 3, "jigsaw": 2}[cfg.pretext]  # segments / halves of a clip
        if cfg.sampling.clip_len < least:
            raise ConfigError(
                f"sampling.clip_len={cfg.sampling.clip_len}: pretext={cfg.pretext} cuts the "
                f"clip into {least} parts; it needs at least {least} frames"
            )
    if isinstance(cfg, PretrainConfig) and cfg.pretext == "mcc":
        loss, optim = cfg.loss, cfg.optim
        if loss.nce > 0 and loss.queue_size < optim.batch_size:
            raise ConfigError(
                f"loss.queue_size={loss.queue_size} is smaller than optim.batch_size="
                f"{optim.batch_size}: the queue must hold at least one batch of keys"
            )
        if loss.slow_rule == "exact" and loss.interp_target == "interpolate":
            bad = [r for r in cfg.sampling.speeds if r % loss.interp_rate]
            if bad:
                raise ConfigError(
                    f"loss.slow_rule=exact needs loss.interp_rate={loss.interp_rate} to divide "
                    f"every speed; it does not divide {bad} (use hold or tile, or other speeds)"
                )
