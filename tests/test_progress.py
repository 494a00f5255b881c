"""tune/progress.py: the lines a sweep prints, on stand-in Tune trials (no Ray session)."""

from __future__ import annotations

import types

import pytest

pytest.importorskip("ray")

from tune import progress  # noqa: E402
from tune.trial import cell_name  # noqa: E402


def trial(tid: str, config: dict, status: str = "RUNNING", last_result=None):
    return types.SimpleNamespace(
        trial_id=tid, config=config, status=status, last_result=last_result or {},
        error_file="/x/error.txt",
    )  # fmt: skip


def test_one_line_per_trial_per_epoch_and_a_heartbeat(capsys, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    cb = progress.EpochLines("val_knn_top1", epochs=8, heartbeat_s=60)
    cb.setup()
    cell = {"loss.nce": 0.0, "seed": 0}
    a = trial("a_00000", {"cell": cell}, status="PENDING")  # Tune updates it after the call
    b = trial("b_00001", {"cell": {"loss.nce": 1.0, "seed": 0}}, status="PENDING")
    cb.on_trial_start(0, [a, b], a)
    a.status = "RUNNING"
    now[0] += 12
    cb.on_trial_result(1, [a, b], a, {"epoch": 2, "val_knn_top1": 21.34, "loss": 0.4123})
    cb.on_step_end(2, [a, b])  # printed 0 s ago: quiet
    now[0] += 61
    cb.on_step_end(3, [a, b])  # 61 s of silence: a status line
    a.last_result = {"epoch": 7, "val_knn_top1": 24.0}  # still RUNNING during the call
    cb.on_trial_complete(4, [a, b], a)
    cb.on_trial_error(5, [a, b], b)
    lines = capsys.readouterr().out.splitlines()
    name = cell_name(cell)
    assert lines == [
        f"trial {name} started (1 running, 1 pending, 0 done, 0 failed)",  # a counted running
        f"trial {name} epoch 3/8: val_knn_top1 21.3, loss 0.412 (12 s)",
        f"[1:13] 1 running, 1 pending, 0 done, 0 failed; best val_knn_top1 21.3 ({name})",
        f"trial {name} done: val_knn_top1 24.0 after epoch 8/8 "
        f"(0 running, 1 pending, 1 done, 0 failed)",
        f"trial {cell_name(b.config['cell'])} FAILED; its error: /x/error.txt",
    ]


def test_a_searched_trial_is_named_by_its_id_and_values():
    t = trial("3f2a_00002", {"loss.tau": 0.31234, "loss.nce": 1})
    assert progress.trial_label(t) == "3f2a_00002 (loss.nce=1,loss.tau=0.312)"


def test_the_callback_survives_pickling():
    """Tune saves the run config (callbacks included) for Tuner.restore."""
    import pickle

    cb = pickle.loads(pickle.dumps(progress.EpochLines("val_knn_top1", 3)))
    assert cb.epochs == 3
