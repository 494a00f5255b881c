"""A run folder: config.json, metrics.jsonl (one line per epoch), result.json, checkpoint.

Tables and plots are made from these files only.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict:
    import numpy
    import pyarrow
    import torch

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pyarrow": pyarrow.__version__,
        "platform": platform.platform(),
    }


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.started = time.time()

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def write_config(self, cfg: dict) -> None:
        _atomic_write(self.path / "config.json", json.dumps(cfg, indent=2))

    def truncate_metrics(self, before_epoch: int) -> None:
        """Keep only epochs < before_epoch (a resumed run rewrites the rest)."""
        if not self.metrics_file.exists():
            return
        keep = [
            line
            for line in self.metrics_file.read_text().splitlines()
            if line.strip() and _epoch_of(line) is not None and _epoch_of(line) < before_epoch
        ]
        _atomic_write(self.metrics_file, "".join(line + "\n" for line in keep))

    def log(self, metrics: dict) -> None:
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(metrics) + "\n")

    def metrics(self) -> list[dict]:
        if not self.metrics_file.exists():
            return []
        return [json.loads(x) for x in self.metrics_file.read_text().splitlines() if x.strip()]

    def write_result(self, result: dict, seed: int, wall_time: float | None = None) -> dict:
        out = {
            **result,
            "seed": seed,
            "wall_time_s": round(
                wall_time if wall_time is not None else time.time() - self.started, 2
            ),
            "git_commit": git_commit(),
            "versions": package_versions(),
        }
        _atomic_write(self.path / "result.json", json.dumps(out, indent=2))
        return out


def _epoch_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None
