"""Where a run computes and at which precision: the one place both are decided.

`resolve_device` turns `--device auto|cpu|cuda|cuda:N` into a torch.device (auto: the first
CUDA device when there is one). `resolve_precision` turns the config's `precision` into what
runs on that device: `auto` is bf16 autocast on a GPU that supports it, fp16 autocast with a
gradient scaler on one that does not, and fp32 on the CPU (CPU autocast is there as
`precision=bf16`, but slower than fp32 on CPUs without bf16 matrix units). `Amp` carries the
choice through a training loop: the autocast context, the scaled backward and step, and the
scaler's state for checkpoints.

Device and precision say how a run computes, not what: they are not part of what makes two
runs the same experiment (mcc.config.EXECUTION), so a CUDA checkpoint resumes or evaluates
on a CPU machine; each run records the ones it used.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from mcc.config import ConfigError

DEVICE_HELP = "auto (default: CUDA when present), cpu, cuda or cuda:N"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """The torch.device for `name`; ConfigError for one this machine does not have."""
    text = (name or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: choose {DEVICE_HELP}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise ConfigError(f"--device {name!r}: choose {DEVICE_HELP}")
    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(
            f"--device {name}: no CUDA device is available here (torch {torch.__version__}, "
            f"{build}); use --device cpu, or install a CUDA build of torch (README, 'GPUs')"
        )
    count = torch.cuda.device_count()
    index = 0 if device.index is None else device.index
    if index >= count:
        raise ConfigError(
            f"--device {name}: this machine has {count} CUDA device(s), 0..{count - 1}"
        )
    return torch.device("cuda", index)


def supports_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp32, bf16 or fp16: what `precision` (auto|fp32|bf16|fp16) means on `device`."""
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if supports_bf16(device) else "fp16"
    if precision == "bf16" and not supports_bf16(device):
        raise ConfigError(f"precision=bf16: {describe(device)} does not support bfloat16; use "
                          f"precision=fp16 (with a gradient scaler) or auto")  # fmt: skip
    if precision not in ("fp32", *DTYPES):
        raise ConfigError(f"precision={precision!r}: choose auto, fp32, bf16 or fp16")
    return precision


def describe(device: torch.device) -> str:
    """`cpu`, or `cuda:0 (NVIDIA H100 80GB HBM3)`: what a run records and prints."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


@dataclass
class Amp:
    """One training loop's precision on its device: `autocast()` around the forward pass and
    the loss, `step(loss, opt)` for the backward pass and the update (through the gradient
    scaler under fp16, which skips a step whose gradients overflowed and lowers its scale)."""

    device: torch.device
    precision: str  # resolved: fp32 | bf16 | fp16
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def create(cls, device: torch.device, precision: str = "auto") -> Amp:
        resolved = resolve_precision(precision, device)
        scaler = torch.amp.GradScaler(device.type) if resolved == "fp16" else None
        return cls(device, resolved, scaler)

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def record(self) -> dict:
        """What a checkpoint keeps: the device and precision used, and the scaler's state."""
        out = {"device": describe(self.device), "precision": self.precision}
        if self.scaler is not None:
            out["scaler"] = self.scaler.state_dict()
        return out

    def restore(self, state: dict) -> None:
        """Take a checkpoint's scaler state when this loop scales too (fp16 again); a
        checkpoint from another precision leaves the fresh scaler as it is."""
        saved = state.get("scaler")
        if self.scaler is not None and isinstance(saved, dict) and saved:
            self.scaler.load_state_dict(saved)


def loader_workers(requested: int | None, device: torch.device, cpus: int | None = None) -> int:
    """Sampling processes for a single-process run: `requested`, or by default none on the
    CPU (the cores are busy training) and up to 8 on a GPU, one core left to the trainer."""
    import os

    if requested is not None:
        if requested < 0:
            raise ConfigError(f"--loader-workers={requested}: must be >= 0")
        return requested
    if device.type != "cuda":
        return 0
    return max(0, min(8, (cpus or os.cpu_count() or 1) - 1))
