"""Crafted or foreign checkpoints given to `evaluate --checkpoint` and `pretrain --resume`:
one `error:` line and a non-zero exit, no traceback, nothing unpickled beyond
torch's weights_only loader, and no allocation a crafted config asks for."""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from fuzz_corpus import guarded

from mcc.cli import main
from mcc.config import PretrainConfig, apply_overrides
from mcc.train import pretrain

TINY = {"model.width": "0.125", "optim.batch_size": "8", "loss.queue_size": "16",
        "optim.epochs": "0", "threads": "1"}  # fmt: skip


class Boom:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _storage_bomb(path: Path, real: Path) -> None:
    """A torch zip whose pickle declares a 400 GB storage over a 40-byte record."""
    mark = object()

    class Rebuild:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2,
                    (mark, 0, (10**11,), (1,), False, collections.OrderedDict()))  # fmt: skip

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", 10**11) if obj is mark else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump({"format": "mcc-checkpoint", "model": {"w": Rebuild()}})
    small = io.BytesIO()
    torch.save({"w": torch.zeros(10)}, small)
    with zipfile.ZipFile(small) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = buf.getvalue() if info.filename.endswith("data.pkl") else src.read(info)
            out.writestr(info.filename, data)


def _edited(edit):
    def write(path: Path, real: Path) -> None:
        state = torch.load(real, weights_only=True)
        edit(state)
        torch.save(state, path)

    return write


def _first(state) -> str:
    return next(iter(state["model"]))


# name -> writer(path, real checkpoint)
CRAFTED = {
    "pickle-reduce-in-torch-zip": lambda p, r: torch.save({"x": Boom(p.with_name("pwned"))}, p),
    "pickle-reduce-raw": lambda p, r: p.write_bytes(pickle.dumps(Boom(p.with_name("pwned")))),
    "random-bytes": lambda p, r: p.write_bytes(os.urandom(4096)),
    "empty-file": lambda p, r: p.write_bytes(b""),
    "truncated": lambda p, r: p.write_bytes(r.read_bytes()[: r.stat().st_size // 2]),
    "storage-bomb": _storage_bomb,
    "foreign-state-dict": lambda p, r: torch.save({"weight": torch.zeros(3, 3)}, p),
    "bare-tensor": lambda p, r: torch.save(torch.zeros(3), p),
    "tensor-of-another-shape": _edited(lambda s: s["model"].update({_first(s): torch.zeros(1)})),
    "config-not-a-dict": _edited(lambda s: s.update(config=5)),
    "config-unknown-key": _edited(lambda s: s["config"].update(evil=1)),
    "config-asks-for-a-huge-model": _edited(lambda s: s["config"]["model"].update(width=4096.0)),
    "layout-not-a-dict": _edited(lambda s: s.update(layout="ntu25")),
    "layout-bad-edges": _edited(lambda s: s["layout"].update(edges=[[0, 1, 2]])),
    "model-not-a-dict": _edited(lambda s: s.update(model=[1, 2])),
    "model-entry-not-a-tensor": _edited(lambda s: s["model"].update({_first(s): 5})),
    "model-nan-weights": _edited(lambda s: s["model"][_first(s)].fill_(float("nan"))),
    "format-version-99": _edited(lambda s: s.update(version=99)),
    "kind-not-a-string": _edited(lambda s: s.update(kind=["x"])),
    "epoch-not-an-int": _edited(lambda s: s.update(epoch="3")),
    "missing-model": _edited(lambda s: s.pop("model")),
    "folder-without-checkpoint": lambda p, r: p.mkdir(),
    "fifo": lambda p, r: os.mkfifo(p),
}
# Fields only a resume reads: evaluate ignores them, a resume must refuse them.
RESUME_ONLY = {
    "optimizer-garbage": _edited(lambda s: s.update(optimizer={"state": 5})),
    "optimizer-buffer-of-another-shape": _edited(
        lambda s: s["optimizer"]["state"].update({0: {"momentum_buffer": torch.zeros(1)}})
    ),
    "optimizer-lr-a-string": _edited(lambda s: s["optimizer"]["param_groups"][0].update(lr="x")),
    "scheduler-extra-attribute": _edited(lambda s: s["scheduler"].update(optimizer=1)),
    "rng-wrong-size": _edited(lambda s: s["rng"].update(torch=torch.zeros(3, dtype=torch.uint8))),
    "rng-python-garbage": _edited(lambda s: s["rng"].update(python=(1, 2))),
    "epoch-past-the-end": _edited(lambda s: s.update(epoch=10**9)),
}


@pytest.fixture(scope="module")
def real_run(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "pre"
    pretrain(apply_overrides(PretrainConfig(), {"data.path": tiny_data, **TINY}), out,
             progress=False)  # fmt: skip
    return out


def _sets(mode: str) -> list[str]:
    keys = TINY if mode == "resume" else ("model.width", "optim.batch_size", "threads")
    return [arg for k in keys for arg in ("--set", f"{k}={TINY[k]}")]


def run_cli(argv: list[str]) -> tuple[int | str, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            with guarded():
                rc = main(argv)
        except BaseException as e:  # noqa: BLE001 - what escapes is the finding
            rc = f"raised {type(e).__name__}: {e}"
    return rc, err.getvalue()


def _craft(tmp_path: Path, writer, real: Path, data: str, mode: str) -> list[str]:
    """Write the crafted file where `mode` looks for it; the CLI arguments."""
    if mode == "evaluate":
        path = tmp_path / "crafted.pt"
        writer(path, real / "checkpoint.pt")
        return ["evaluate", "--data", data, "--checkpoint", str(path), "--protocol", "knn",
                "--out", str(tmp_path / "ev"), "--no-progress", *_sets(mode)]  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(real, run)
    (run / "checkpoint.pt").unlink()
    writer(run / "checkpoint.pt", real / "checkpoint.pt")
    return [
        "pretrain",
        "--data",
        data,
        "--out",
        str(run),
        "--resume",
        "--no-progress",
        *_sets(mode),
    ]


CASES = [(n, w, m) for n, w in CRAFTED.items() for m in ("evaluate", "resume")] + [
    (n, w, "resume") for n, w in RESUME_ONLY.items()
]


@pytest.mark.parametrize("name, writer, mode", CASES, ids=[f"{m}-{n}" for n, _, m in CASES])
def test_crafted_checkpoint_is_one_clear_error(name, writer, mode, real_run, tiny_data, tmp_path):
    rc, err = run_cli(_craft(tmp_path, writer, real_run, tiny_data, mode))
    assert rc == 2, (rc, err)
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "checkpoint" in lines[0] and "Traceback" not in err
    assert not list(tmp_path.rglob("pwned")), "the pickle's payload ran"


def test_the_real_checkpoint_passes_the_same_checks(real_run, tiny_data, tmp_path):
    copy = lambda p, r: shutil.copy(r, p)  # noqa: E731
    rc, err = run_cli(_craft(tmp_path, copy, real_run, tiny_data, "resume"))
    assert rc == 0 and not err.strip(), err
