"""An encoder from a checkpoint, and the checks that it fits the dataset and config it is
evaluated with: same joints, channels and edges, the same backbone, the same normalisation."""

from __future__ import annotations

from pathlib import Path

import torch

from mcc.checkpoint import (
    CheckpointError,
    check_state_dict,
    config_of,
    load_checkpoint,
    load_module,
)
from mcc.config import ConfigError, DataConfig, EvalConfig, ModelConfig, PretrainConfig
from mcc.layouts import Layout, layout_from_dict
from mcc.models import SkeletonEncoder, build_encoder
from mcc.shards import read_manifest


def load_pretrained_encoder(path: str | Path) -> tuple[SkeletonEncoder, ModelConfig, dict]:
    """The encoder of a checkpoint (see `encoder_of`), with its model config and layout."""
    state = load_checkpoint(path)
    encoder, model_cfg = encoder_of(state)
    return encoder, model_cfg, state["layout"]


def encoder_of(state: dict) -> tuple[SkeletonEncoder, ModelConfig]:
    """The encoder a loaded checkpoint holds under `encoder.`, and its model config: a
    pretraining run's online encoder (MCC or a comparison pretext), or a fine-tuned
    classifier's encoder (kind `finetune`, written by the fine-tuning protocols)."""
    cls = EvalConfig if state["kind"] == "finetune" else PretrainConfig
    model_cfg = config_of(state, cls).model
    layout = layout_from_dict(state["layout"])
    prefix = "encoder."
    sub = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
    what = f"encoder of {state['path']}"
    with torch.device("meta"):  # shapes only: a crafted config cannot make us allocate
        check_state_dict(build_encoder(model_cfg, layout), sub, what)
    encoder = build_encoder(model_cfg, layout)
    load_module(encoder, sub, what)
    return encoder, model_cfg


def check_layout(trained: dict, layout: Layout, checkpoint, data_path) -> None:
    """An encoder runs on another dataset only with the same joints, channels and edges (its
    graph and input layer are built from them); the layouts' names may differ."""
    own = layout_from_dict(trained)
    if (own.num_joints, own.channels, _edge_set(own)) != (
        layout.num_joints,
        layout.channels,
        _edge_set(layout),
    ):
        raise CheckpointError(
            f"checkpoint {checkpoint} was trained on layout {own.name!r} ({_describe(own)}); "
            f"dataset {data_path} uses {layout.name!r} ({_describe(layout)}): the encoder "
            f"needs the same joints, channels and edges"
        )


def _edge_set(layout: Layout) -> set[frozenset]:
    return {frozenset(e) for e in layout.edges}


def _describe(layout: Layout) -> str:
    return (
        f"{layout.num_joints} joints, channels {','.join(layout.channels)}, "
        f"{len(layout.edges)} edges"
    )


def check_backbone(asked: ModelConfig, trained: ModelConfig, checkpoint) -> None:
    """A checkpoint brings its own model config; a model.backbone (or model.stream) set to
    something else than the default and the checkpoint's is a mistake, not a request."""
    default = ModelConfig()
    for key in ("backbone", "stream"):
        a, t = getattr(asked, key, None), getattr(trained, key, None)
        if a != t and a != getattr(default, key, None):
            raise ConfigError(
                f"checkpoint {checkpoint} holds a model.{key}={t!r} encoder, but the config "
                f"asks for model.{key}={a!r}: drop that --set or use a {a!r} checkpoint"
            )


def check_normalize(data: DataConfig, state: dict, checkpoint) -> None:
    """The encoder reads sequences normalised the way it was trained on: a different
    data.normalize feeds it inputs it never saw (NW-UCLA kNN: 43.3 % read with the
    pretraining's center-align, 28.7 % with center)."""
    trained = state["config"].get("data", {}).get("normalize")
    if trained is not None and trained != data.normalize:
        raise ConfigError(
            f"checkpoint {checkpoint} was trained on data.normalize={trained}; evaluate with "
            f"--set data.normalize={trained} (now {data.normalize})"
        )


def source_of(state: dict) -> dict:
    """Where a checkpoint's encoder was trained: its data.path and that dataset's name (the
    checkpoint's own record, else the manifest if it is still there)."""
    path = state["config"].get("data", {}).get("path")
    name = state.get("dataset")
    if name is None and path:
        try:
            name = read_manifest(path).name
        except (FileNotFoundError, ValueError, KeyError):
            name = None
    return {"source_data": path, "source_dataset": name}
