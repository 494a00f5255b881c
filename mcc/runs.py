"""A run folder: config.json, metrics.jsonl (one line per epoch), result.json, checkpoint.

Tables and plots are made from these files only. result.json is written last (atomically), so
a folder holding one holds a finished run; `finished_run` is the one rule for reusing it.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from mcc import files
from mcc.config import EXECUTION, ConfigError, flatten, to_dict
from mcc.files import atomic_write


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
    """A run folder on a local disk, or at a URI (`s3://bucket/runs/x`). A URI's run is
    written in a local staging folder (`path`, mcc.files.staging_dir) holding the objects
    already there (a resumed run), and each file is uploaded whole after every write
    (`publish`): config.json, metrics.jsonl per epoch, the checkpoint per save, and at the
    end every other file with result.json last."""

    def __init__(self, path: str | Path) -> None:
        self.uri = str(path).rstrip("/") if files.is_uri(path) else None
        self.path = files.staging_dir(self.uri) if self.uri else Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if self.uri:
            self._fetch()
        self.started = time.time()

    @property
    def location(self) -> str:
        """Where the run is, as the user named it (the URI, or the local folder)."""
        return self.uri or str(self.path)

    def _fetch(self) -> None:
        """Mirror the URI's files into the staging folder (stale local ones removed)."""
        for old in self.path.rglob("*"):
            if old.is_file():
                old.unlink()
        for name in files.list_files(self.uri):
            files.download(files.join(self.uri, name), self.path / name)

    def publish(self, local: str | Path) -> None:
        """Upload one file of the staging folder whole to the run's URI (local: nothing)."""
        if self.uri:
            rel = Path(local).resolve().relative_to(self.path.resolve()).as_posix()
            files.upload(local, files.join(self.uri, rel))

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def write_config(self, cfg: dict) -> None:
        atomic_write(self.path / "config.json", json.dumps(cfg, indent=2))
        self.publish(self.path / "config.json")

    def truncate_metrics(self, before_epoch: int) -> None:
        """Keep only epochs < before_epoch (a resumed run rewrites the rest)."""
        if not self.metrics_file.exists():
            return
        keep = [
            line
            for line in self.metrics_file.read_text().splitlines()
            if line.strip() and _epoch_of(line) is not None and _epoch_of(line) < before_epoch
        ]
        atomic_write(self.metrics_file, "".join(line + "\n" for line in keep))
        self.publish(self.metrics_file)

    def log(self, metrics: dict) -> None:
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        self.publish(self.metrics_file)

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
        if self.uri:
            for f in sorted(self.path.rglob("*")):
                if f.is_file() and f.name != "result.json" and not f.name.endswith(".tmp"):
                    self.publish(f)
        atomic_write(self.path / "result.json", json.dumps(out, indent=2))
        self.publish(self.path / "result.json")
        return out


def _epoch_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


def finished_run(folder: str | Path, cfg, ignore: Iterable[str] = ()) -> dict | None:
    """The result of the finished run in `folder` if the config.json it recorded equals the
    asked config dataclass `cfg`, compared key by key (dotted), leaving out keys under
    `ignore` and mcc.config.EXECUTION (threads, precision). A key the recorded config lacks
    (a setting added since that run) counts at its default, the behaviour that run had; a
    key only the recorded config has (a setting dropped since, or one the run adds, such as
    an evaluation's checkpoint) is not compared.

    None when `folder` holds no finished run (none, or one cut off before its result.json):
    the caller runs it. A finished run made with other settings is a ConfigError naming them:
    its results are neither overwritten nor passed off as the asked run's."""
    try:
        result = json.loads(files.read_bytes(files.join(folder, "result.json")))
    except (FileNotFoundError, ValueError):  # no run, or not finished (result.json is last)
        return None
    try:
        saved = flatten(json.loads(files.read_bytes(files.join(folder, "config.json"))))
    except (FileNotFoundError, ValueError):
        raise ConfigError(f"{folder} holds a finished run without a readable config.json, so "
                          f"its settings are unknown: use another --out, or delete that run "
                          f"to redo it") from None  # fmt: skip
    defaults = _as_saved(to_dict(type(cfg)()))
    wanted = _as_saved(to_dict(cfg))
    skip = (*ignore, *EXECUTION)
    changed = {k: (saved.get(k, defaults.get(k)), v) for k, v in wanted.items()
               if saved.get(k, defaults.get(k)) != v and not _under(k, skip)}  # fmt: skip
    if changed:
        what = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ConfigError(f"{folder} holds a finished run made with other settings ({what}): "
                          f"use another --out, or delete that run to redo it")  # fmt: skip
    return result


def _as_saved(cfg: dict) -> dict:
    """Dotted keys with the values config.json holds (tuples as lists)."""
    return flatten(json.loads(json.dumps(cfg)))


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)
