"""Checkpoints: written atomically, validated whole before anything is loaded.

A checkpoint given to `evaluate --checkpoint` or found by `pretrain --resume` may be
crafted or foreign. It is read with `torch.load(weights_only=True)` (tensors and plain
containers only: nothing else is unpickled), from a regular file only, and every field is
checked (types, the layout, finite weights) before anything uses it; the optimizer,
scheduler and RNG states of a resume are checked against freshly built ones. Any problem
is one CheckpointError naming the file.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import warnings
from pathlib import Path

import torch
from torch import nn

from mcc import files
from mcc.files import atomic_path
from mcc.layouts import layout_from_dict
from mcc.untrusted import BadInput, open_regular

FORMAT = "mcc-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "kind", "config", "layout", "epoch", "model")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or does not fit the model."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save to a temporary name, then rename: a killed writer never leaves a half file."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)


def _download(uri: str) -> Path:
    """A local copy of the checkpoint at `uri` (the object, or a run's checkpoint.pt)."""
    inner = files.join(uri, "checkpoint.pt")
    src = inner if files.exists(inner) else uri
    local = files.staging_dir(src) / "checkpoint.pt"
    try:
        files.download(src, local)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {uri} does not exist") from None
    return local


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint at path (a file, or a run folder holding checkpoint.pt), its fields
    checked (see the module docstring); CheckpointError otherwise. A URI is downloaded
    first (mcc.files)."""
    if files.is_uri(path):
        path = _download(str(path))
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not os.path.lexists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        f = open_regular(path, limit=None)  # a FIFO would block torch.load
    except BadInput as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    if os.fstat(f.fileno()).st_size == 0:
        f.close()
        raise CheckpointError(f"checkpoint {path} is an empty file")
    try:
        with f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols
            state = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's weights_only unpickler refused it
        detail = _unpickler_reason(str(e))
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a checkpoint: weights_only loading (tensors "
            f"and plain containers only) refused it ({detail})"
        ) from None
    except Exception as e:  # torch raises many types for a damaged or crafted file
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a checkpoint ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an MCC checkpoint")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}")
    problem = _field_problem(state)
    if problem:
        raise CheckpointError(f"checkpoint {path} is damaged or crafted: {problem}")
    state["path"] = str(path)
    return state


def _unpickler_reason(message: str) -> str:
    """The line of torch's weights_only error that says what was refused (the rest is
    advice to load with weights_only=False, which we never do)."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation",
                   "Re-running", "WeightsUnpickler error")  # fmt: skip
    lines = [x.strip() for x in message.splitlines() if x.strip()]
    return next((x for x in lines if not x.startswith(boilerplate)), "unknown")[:120]


def _field_problem(state: dict) -> str | None:
    """Why a loaded dict with the required keys is not a checkpoint we wrote, or None."""
    version = state["version"]
    if type(version) is not int or not 1 <= version <= VERSION:
        return f"format version {version!r}; this code reads versions 1..{VERSION}"
    types = {"kind": str, "config": dict, "layout": dict, "epoch": int, "model": dict}
    for key, kind in types.items():
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            return f"{key} is of type {type(state[key]).__name__}, not {kind.__name__}"
    try:
        layout_from_dict(state["layout"])
    except Exception as e:  # noqa: BLE001 - any failure means a bad layout
        return f"layout is not valid ({type(e).__name__}: {str(e)[:100]})"
    for k, v in state["model"].items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            return f"model entry {str(k)[:40]!r} is of type {type(v).__name__}, not a tensor"
        if v.is_floating_point() and not torch.isfinite(v).all():
            return f"model tensor {k} holds NaN or inf (a diverged run?)"
    return None


def config_of(state: dict, cls):
    """The checkpoint's config as a `cls`; CheckpointError when it is not a valid one."""
    from mcc.config import from_dict

    try:
        return from_dict(cls, state["config"])
    except Exception as e:  # noqa: BLE001 - ConfigError, or anything a crafted dict causes
        raise CheckpointError(
            f"checkpoint {state.get('path', '')}: its config is not a valid "
            f"{cls.__name__} ({type(e).__name__}: {str(e)[:160]})"
        ) from None


def check_training_state(state: dict, opt, sched, epochs: int, what: str) -> None:
    """Raise CheckpointError unless the checkpoint's epoch, optimizer, scheduler and RNG
    states fit a freshly built optimizer and scheduler: a resume must never fail (or run
    on garbage) later, in the middle of training."""
    epoch = state["epoch"]  # the last finished epoch; -1 before the first
    problem = (
        (f"epoch {epoch} outside -1..{epochs - 1}" if not -1 <= epoch <= epochs - 1 else None)
        or _optimizer_problem(state.get("optimizer"), opt)
        or _like(sched.state_dict(), state.get("scheduler"), "scheduler", subset=True)
        or _rng_problem(state.get("rng"))
    )
    if problem:
        raise CheckpointError(f"{what} cannot be resumed: {problem}")


def _optimizer_problem(saved, opt) -> str | None:
    fresh = opt.state_dict()
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        return "optimizer state is not {state, param_groups}"
    problem = _like(fresh["param_groups"], saved["param_groups"], "optimizer", subset=True)
    if problem:
        return problem
    params = [p for group in opt.param_groups for p in group["params"]]
    if not isinstance(saved["state"], dict):
        return "optimizer state is not a dict"
    for i, per_param in saved["state"].items():
        if type(i) is not int or not 0 <= i < len(params) or not isinstance(per_param, dict):
            return f"optimizer state entry {str(i)[:20]!r} names no parameter"
        for k, v in per_param.items():
            if not isinstance(v, torch.Tensor):
                return f"optimizer {k} of parameter {i} is not a tensor"
            if v.dim() and v.shape != params[i].shape:
                shapes = f"{tuple(v.shape)} vs {tuple(params[i].shape)}"
                return f"optimizer {k} of parameter {i} has shape {shapes}"
            if v.is_floating_point() and not torch.isfinite(v).all():
                return f"optimizer {k} of parameter {i} holds NaN or inf"
    return None


def _like(fresh, saved, where: str, subset: bool = False) -> str | None:
    """None when `saved` has the structure of `fresh` (same container shapes; numbers where
    numbers are, finite; dict keys equal, or with subset=True a subset at the top level,
    for fields a newer torch adds), else what differs."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict):
            return f"{where} is a {type(saved).__name__}, not a dict"
        extra = set(saved) - set(fresh)
        if extra or (not subset and set(fresh) - set(saved)):
            return f"{where} keys differ: {sorted(map(str, extra or set(fresh) - set(saved)))[:3]}"
        return next((p for k in saved if (p := _like(fresh[k], saved[k], f"{where}.{k}"))), None)
    if isinstance(fresh, list | tuple):
        if not isinstance(saved, list | tuple) or len(saved) != len(fresh):
            return f"{where} is not a list of {len(fresh)}"
        return next((p for i, (a, b) in enumerate(zip(fresh, saved))
                     if (p := _like(a, b, f"{where}[{i}]", subset))), None)  # fmt: skip
    if isinstance(fresh, bool) or fresh is None or isinstance(fresh, str):
        ok = type(saved) is type(fresh) or (fresh is None and saved is None)
        return None if ok else f"{where} is {saved!r:.40}, expected a {type(fresh).__name__}"
    if isinstance(fresh, int | float):
        if isinstance(saved, bool) or not isinstance(saved, int | float):
            return f"{where} is {saved!r:.40}, not a number"
        return None if math.isfinite(saved) else f"{where} is {saved!r}"
    if isinstance(fresh, torch.Tensor):
        ok = isinstance(saved, torch.Tensor) and saved.shape == fresh.shape
        return None if ok else f"{where} is not a tensor of shape {tuple(fresh.shape)}"
    return None


def _rng_problem(rng) -> str | None:
    if not isinstance(rng, dict) or set(rng) != {"torch", "python"}:
        return "rng state is not {torch, python}"
    t, fresh = rng["torch"], torch.get_rng_state()
    if not isinstance(t, torch.Tensor) or t.dtype != fresh.dtype or t.shape != fresh.shape:
        return "torch RNG state has the wrong type or size"
    try:
        random.Random().setstate(rng["python"])  # validated on a scratch generator
    except (TypeError, ValueError, OverflowError) as e:
        return f"python RNG state is not valid ({str(e)[:80]})"
    return None


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
