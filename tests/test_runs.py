"""Run folders: the one rule for reusing a finished run (mcc.runs.finished_run), the one
rule for calling a difference resolved (mcc.stats), and atomic writes (mcc.files)."""

from __future__ import annotations

import json

import pytest
import torch

from mcc.config import ConfigError, EvalConfig, PretrainConfig, apply_overrides, to_dict
from mcc.evaluate import evaluate, finished_evaluation
from mcc.files import atomic_path, atomic_write
from mcc.runs import RunDir, finished_run
from mcc.stats import mean_std, resolved
from mcc.tables import markdown_table


def _knn(data, **over):
    base = {"data.path": data, "protocol": "knn", "model.width": "0.125", "frames": "32",
            "threads": "1"}  # fmt: skip
    return apply_overrides(EvalConfig(), {**base, **over})


def test_a_finished_evaluation_is_reused_only_with_the_same_settings(tiny_data, tmp_path):
    out = tmp_path / "knn"
    cfg = _knn(tiny_data)
    assert finished_evaluation(cfg, out) is None  # nothing there: run it
    res = evaluate(cfg, None, out, progress=False)
    assert finished_evaluation(cfg, out) == res
    # the thread count changes no number: still the same run
    assert finished_evaluation(_knn(tiny_data, threads="2"), out) == res
    # another setting: an error naming what changed, and nothing written
    before = (out / "result.json").read_text()
    with pytest.raises(ConfigError, match=r"\(knn_k: 20 -> 5\): use another --out"):
        finished_evaluation(_knn(tiny_data, knn_k="5"), out)
    assert (out / "result.json").read_text() == before


def test_what_counts_as_a_finished_run(tmp_path):
    cfg = PretrainConfig()
    run = RunDir(tmp_path / "r")
    run.write_config(to_dict(cfg))
    assert finished_run(run.path, cfg) is None  # cut off before its result.json: rerun it
    run.write_result({"top1": 1.0}, seed=0)
    assert finished_run(run.path, cfg)["top1"] == 1.0
    # a setting added since the run was made counts at its default (the run's behaviour)
    saved = json.loads((run.path / "config.json").read_text())
    del saved["loss"]["tau"]
    (run.path / "config.json").write_text(json.dumps(saved))
    assert finished_run(run.path, cfg)["top1"] == 1.0
    with pytest.raises(ConfigError, match=rf"loss.tau: {cfg.loss.tau} -> 0.9"):
        finished_run(run.path, apply_overrides(cfg, {"loss.tau": "0.9"}))
    # a finished run whose settings are unknown is not taken for the asked one
    (run.path / "config.json").unlink()
    with pytest.raises(ConfigError, match="without a readable config.json"):
        finished_run(run.path, cfg)


def test_resolved_is_twice_the_larger_spread():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0) and mean_std([4.0]) == (4.0, None)
    assert mean_std([]) == (None, None)
    # spreads 1 and 2: a difference of 5 is more than 2 x 2, one of 4 is not
    assert resolved([10.0, 11.0, 12.0], [4.0, 6.0, 8.0])
    assert not resolved([10.0, 11.0, 12.0], [5.0, 7.0, 9.0])
    # a difference of 3 is 2.3 Welch standard errors, yet not resolved here
    assert not resolved([10.0, 11.0, 12.0], [6.0, 8.0, 10.0])
    assert resolved([2.0, 2.0], [1.0, 1.0])  # no spread at all
    assert not resolved([90.0], [10.0, 11.0])  # one seed: no spread to judge by


def test_atomic_writes_replace_the_file_or_leave_it(tmp_path):
    f = tmp_path / "a.json"
    atomic_write(f, "old")
    atomic_write(f, b"new")
    assert f.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(f) as tmp:
        torch.save({"x": 1}, tmp)
        raise RuntimeError("killed half way")
    assert f.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_markdown_table_escapes_a_bar_inside_a_cell():
    assert markdown_table(["a", "b"], [["x|y", 1.5]]) == "| a | b |\n|---|---|\n| x\\|y | 1.5 |"
