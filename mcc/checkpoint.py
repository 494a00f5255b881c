"""Checkpoints: written atomically, validated whole before anything is loaded."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

FORMAT = "mcc-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "kind", "config", "layout", "epoch", "model")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or does not fit the model."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save to a temporary name, then rename: a killed writer never leaves a half file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a checkpoint "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an MCC checkpoint")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}")
    state["path"] = str(path)
    return state


def check_state_dict(module: nn.Module, state: dict, what: str) -> None:
    """Raise CheckpointError unless `state` has exactly the module's keys and shapes, so that
    load_state_dict never half-loads."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [k for k in own.keys() & state.keys() if tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''}")
        if shapes:
            k = shapes[0]
            parts.append(f"shape of {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}")
        raise CheckpointError(f"{what} does not fit the model: {'; '.join(parts)}")


def load_module(module: nn.Module, state: dict, what: str) -> None:
    check_state_dict(module, state, what)
    module.load_state_dict(state)
