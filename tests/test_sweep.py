"""python tune/sweep.py: bad input before any trial, a 2-trial search killed and resumed to
its end, a grid's cached cells, a Ray job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")
pytest.importorskip("optuna")

from tune.sweep import main  # noqa: E402
from tune.trial import cell_name  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def tiny_args(data: str, out: Path, *extra: str) -> list[str]:
    return ["--data", data, "--out", str(out), "--preset", "tiny",
            "--set", "data.val_fraction=0.25", "--set", "threads=1", *extra]  # fmt: skip


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--space", "loss.temperature=0.1:1"], "unknown parameter 'loss.temperature'"),
        (["--space", "loss.tau=0.9:0.1"], "empty or inverted range"),
        (["--space", "loss.tau=0.5:0.5"], "empty or inverted range"),
        (["--search", "loss.gamma"], "no built-in range"),
        (["--space", "loss.queue_size=8,64"], "K must be at least the batch size"),
        (["--set", "data.val_fraction=0"], "validation split"),
        (["--confirm", "1"], "at least 2 seeds"),
        (["--grid", "--space", "loss.tau=0.2,0.5", "--confirm", "3"], "needs a search"),
        (["--confirm", "3", "--confirm-protocol", "semi", "--confirm-fraction", "1"],
         "share in (0, 1)"),
        (["--confirm-protocol", "semi"], "add --confirm N"),
        (["--confirm", "3", "--confirm-fraction", "0.2"], "add --confirm-protocol semi"),
        (["--confirm-epochs", "24"], "add --confirm N"),
        (["--confirm", "3", "--confirm-epochs", "0"], "need at least 1"),
        (["--search", "optim.lr", "--set", "optim.optimizer=adam"], "0.01 .. 0.3, log is SGD's"),
        (["--gpus-per-worker", "0.5"], "--gpus-per-worker=0.5: add --use-gpu"),
        (["--use-gpu", "--gpus-per-worker", "0"], "must be > 0"),
    ],
)
def test_bad_input_is_one_clear_line_before_any_trial(tiny_data, tmp_path, capsys, extra,
                                                      message):  # fmt: skip
    args = tiny_args(tiny_data, tmp_path / "s", *extra)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "s" / "tune").exists()  # nothing started


def test_unwritable_storage_is_refused(tiny_data, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # a path below a file cannot be written, even by root
    assert main(tiny_args(tiny_data, blocker / "s")) == 2
    assert "not writable" in capsys.readouterr().err


def test_use_gpu_without_gpus_is_one_line_before_any_trial(ray_cluster, tiny_data, tmp_path,
                                                           capsys):  # fmt: skip
    args = tiny_args(tiny_data, tmp_path / "s", "--use-gpu", "--address", ray_cluster.address)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --use-gpu: the cluster has no GPUs") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "tune").exists()  # no trial started


def test_grid_caches_cells_and_killed_sweep_resumes(ray_cluster, tiny_data, tmp_path):
    out = tmp_path / "g"
    # one cell at a time, so that the kill falls between the first cell's end and the second's
    args = tiny_args(tiny_data, out, "--grid", "--space", "loss.nce=0,1", "--test-eval",
                     "none", "--address", ray_cluster.address, "--max-concurrent", "1")  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(REPO / "tune" / "sweep.py"), *args],
                            start_new_session=True, stdout=subprocess.DEVNULL)  # fmt: skip
    cells = out / "cells"
    deadline = time.time() + 300
    while time.time() < deadline and not list(cells.glob("*.json")):
        assert proc.poll() is None, "the sweep ended before it was killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    finished = {p.name: p.stat().st_mtime for p in cells.glob("*.json")}
    assert len(finished) == 1
    assert main(args) == 0  # the same grid again: cached cells are kept, the rest run
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2 and table["status"].str.startswith("completed").all()
    for name, mtime in finished.items():  # finished cells were not run again
        assert (cells / name).stat().st_mtime == mtime
    assert {json.loads(p.read_text())["epochs"] for p in cells.glob("*.json")} == {2}


def test_sweep_runs_as_a_ray_job(ray_cluster, tiny_data, tmp_path):
    out = tmp_path / "job"
    cmd = ["ray", "job", "submit", "--address", ray_cluster.dashboard_url,
           "--working-dir", str(REPO),
           "--runtime-env-json", json.dumps({"env_vars": {"RAY_AUTH_MODE": "disabled"}}),
           "--", "python", "tune/sweep.py", *tiny_args(tiny_data, out, "--search", "loss.tau",
                                                        "--trials", "1")]  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert len(pd.read_csv(out / "results.csv")) == 1
    assert (out / "summary.md").exists()


# A small search, one trial at a time (so the order is fixed), where ASHA has rungs to keep:
# 3 trials of 2 epochs, a stop possible after the first epoch.
SEARCH = ("--space", "optim.lr=0.01:0.5:log", "--trials", "3", "--grace-epochs", "1",
          "--max-concurrent", "1")  # fmt: skip


@pytest.fixture(scope="module")
def search_data(tmp_path_factory) -> str:
    """Enough samples (72 to pretrain on, 24 to validate) for a few steps per epoch, so that
    the trials' scores differ and ASHA has something to stop."""
    from mcc.datasets.synthetic import generate, synthetic_config

    path = tmp_path_factory.mktemp("search_data")
    generate(path, synthetic_config({"num_classes": 4, "train_per_class": 24,
                                     "test_per_class": 4, "min_frames": 40, "max_frames": 90,
                                     "seed": 5}))  # fmt: skip
    return str(path)


def outcome(out: Path) -> pd.DataFrame:
    """What a search decided and scored: its table less wall times and checkpoint paths."""
    table = pd.read_csv(out / "results.csv")
    return table.drop(columns=["wall_time_s", "checkpoint"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(ray_cluster, search_data, tmp_path_factory) -> pd.DataFrame:
    """SEARCH run to its end in this process: what a killed and resumed one must match."""
    out = tmp_path_factory.mktemp("uninterrupted") / "s"
    assert main(tiny_args(search_data, out, *SEARCH, "--address", ray_cluster.address)) == 0
    table = outcome(out)
    # the search is only a test of the scheduler's state if ASHA stopped a trial in it
    assert (table["status"] == "stopped early").any(), table
    return table


def start_sweep(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "tune" / "sweep.py"), *args],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})  # fmt: skip


def test_killed_search_resumes_to_the_uninterrupted_result(ray_cluster, search_data, tmp_path,
                                                           uninterrupted):  # fmt: skip
    """The driver SIGKILLed during the second trial, then `--resume`: the same trials, the
    same ASHA stops, the same scores and best trial as the search uninterrupted; finished
    trials are not run again."""
    out = tmp_path / "s"
    args = tiny_args(search_data, out, *SEARCH, "--address", ray_cluster.address)
    proc = start_sweep(args)
    trials = out / "trials"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(trials.glob("*"))) < 2:
        assert proc.poll() is None, "the sweep ended before it was killed"
        time.sleep(0.2)
    time.sleep(2)  # into the second trial's run
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(trials.glob("*"))) == 2, "the kill did not fall in the second trial"
    first = sorted(trials.glob("*"), key=lambda p: p.stat().st_mtime)[0].name
    done = {first: sorted(p.name for p in (out / "train" / first).glob("checkpoint_*"))}
    assert main(args) == 2  # a second run on the same folder without --resume is refused
    handler = signal.getsignal(signal.SIGINT)
    assert main(args + ["--resume"]) == 0
    assert signal.getsignal(signal.SIGINT) is handler  # Tune's own handler is not left behind
    pd.testing.assert_frame_equal(outcome(out), uninterrupted)
    assert len(pd.read_parquet(out / "results.parquet")) == 3
    assert (out / "optuna.journal").stat().st_size > 0
    summary = (out / "summary.md").read_text()
    assert "## Best configuration" in summary and "test kNN top-1" in summary
    for name, ckpts in done.items():  # a finished trial wrote no new checkpoint
        assert sorted(p.name for p in (out / "train" / name).glob("checkpoint_*")) == ckpts


def test_a_killed_train_worker_changes_nothing(ray_cluster, search_data, tmp_path,
                                               uninterrupted):  # fmt: skip
    """A trial's Train worker SIGKILLed at the start of its second epoch (MCC_FAULT, passed
    on to the trials' workers): Ray Train restarts it from the checkpoint and the search ends
    as the uninterrupted one."""
    out = tmp_path / "s"
    marker = tmp_path / "killed"
    args = tiny_args(search_data, out, *SEARCH, "--address", ray_cluster.address)
    proc = start_sweep(args, {"MCC_FAULT": f"rank=0,epoch=1,step=0,once={marker}"})
    assert proc.wait(timeout=600) == 0
    assert marker.exists(), "no worker was killed"
    pd.testing.assert_frame_equal(outcome(out), uninterrupted)


def test_best_trial_is_one_that_ran_every_epoch():
    """ASHA judges a stopped trial on fewer epochs: the summary's best and the one test score
    go to the best trial that finished (any trial only when none did)."""
    from tune.summary import best_row

    table = pd.DataFrame(
        {
            "val_knn_top1": [6.9, 9.0, None, 8.0],
            "status": ["completed", "stopped early", "error", "completed (cached)"],
        }
    )
    assert best_row(table) == 3
    table["status"] = ["stopped early", "stopped early", "error", "stopped early"]
    assert best_row(table) == 1


def test_confirmation_reruns_best_and_control_on_fresh_seeds(tmp_path, monkeypatch):
    """--confirm: the best trial's parameters and the all-zero-weights control, each on seeds
    the search did not use, through the grid engine; mean, spread and verdict in the summary.
    (The grid engine itself is covered by the Ray tests above; here it is replaced.)"""
    import argparse

    import numpy as np

    from mcc.config import LossConfig, PretrainConfig
    from tune import confirm, grid
    from tune.summary import add_confirmations

    table = pd.DataFrame({"trial": ["a", "b"], "param:loss.tau": [0.2, np.float64(0.5)],
                          "val_knn_top1": [30.0, 40.0], "status": ["completed"] * 2})  # fmt: skip
    ran = {}

    def fake_grid(args, base, cells, out, space=None):
        ran.update(cells=cells, out=out, test_eval=args.test_eval, epochs=base.optim.epochs)
        score = {0.5: [60.0, 62.0, 64.0], 0.0: [40.0, 41.0, 42.0]}
        rows = [{"trial": cell_name(c), "test_knn_top1": score[c.get("loss.tau", 0.0)][i % 3]}
                for i, c in enumerate(cells)]  # fmt: skip
        return pd.DataFrame(rows)

    monkeypatch.setattr(grid, "run", fake_grid)
    (tmp_path / "summary.md").write_text("# sweep\n")
    args = argparse.Namespace(confirm=3, test_eval=None, confirm_protocol="knn",
                              confirm_fraction=0.1, confirm_epochs=None)  # as sweep fills them
    res = confirm.confirm(args, PretrainConfig(seed=4), table, tmp_path)
    assert ran["test_eval"] == "all" and ran["out"] == tmp_path / "confirm"
    assert type(ran["cells"][0]["loss.tau"]) is float  # a plain value for the config
    # three times the trials' 80 epochs: the chosen configuration trains longer
    assert ran["cells"] == [{"loss.tau": 0.5, "optim.epochs": 240, "seed": s}
                            for s in (5, 6, 7)] + [
        {**confirm.CONTROL, "optim.epochs": 240, "seed": s} for s in (5, 6, 7)]  # fmt: skip
    assert ran["epochs"] == 240 and res["epochs"] == 240
    assert res["best"]["test_knn_top1"] == [60.0, 62.0, 64.0]
    assert res["control"]["mean"] == 41.0 and res["difference"] == 21.0 and res["resolved"]
    assert json.loads((tmp_path / "confirm.json").read_text())["resolved"] is True
    add_confirmations(tmp_path)  # what sweep.py does after the search's summary
    summary = (tmp_path / "summary.md").read_text()
    assert ("## Confirmation on fresh seeds [5, 6, 7], 240 pretraining epochs (test split, "
            "kNN top-1 %)") in summary  # fmt: skip
    assert "+21.0, resolved" in summary
    # another protocol's confirmation (a file named before confirm.json) comes after kNN's
    semi = {**json.loads((tmp_path / "confirm.json").read_text()), "protocol": "semi",
            "label_fraction": 0.1}  # fmt: skip
    semi["best"]["params"]["loss.tau"] = 0.20198537298126304
    (tmp_path / "confirm-semi-0.1.json").write_text(json.dumps(semi))
    (tmp_path / "summary.md").write_text("# sweep\n")
    add_confirmations(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert summary.index("kNN top-1 %") < summary.index("0.1 of each class's labels")
    assert "`loss.tau`=0.202)" in summary  # 4 significant digits
    (tmp_path / "confirm-semi-0.1.json").unlink()

    # a best trial with every loss weight at 0 is the control itself: nothing is rerun
    ran.clear()
    table["param:loss.triplet"], table["param:loss.nce"] = 0.0, 0.0
    res = confirm.confirm(args, PretrainConfig(seed=4, loss=LossConfig(interp=0.0)), table,
                         tmp_path)  # fmt: skip
    assert not ran and res["resolved"] is False and "it is the control" in res["note"]
    (tmp_path / "summary.md").write_text("# sweep\n")
    add_confirmations(tmp_path)
    assert "control itself (no pretraining)" in (tmp_path / "summary.md").read_text()


def test_interrupted_search_keeps_its_table_and_exits_130(tmp_path, monkeypatch):
    """Tune returns normally after a Ctrl-C, with trials neither finished nor failed: the
    table of what ran and the summary are written, the test split is not scored, and
    `python tune/sweep.py` exits 130 instead of reporting a finished sweep. (Tune itself is
    replaced here; the Ray tests above cover the real engine.)"""
    import argparse
    import types

    from mcc.config import PretrainConfig
    from tune import grid, study, sweep, trial, tuner

    cells = [{"loss.tau": 0.2}, {"loss.tau": 0.5}]

    class FakeGrid(list):  # what Tuner.fit() returns: one Result per trial
        num_terminated, num_errors = 1, 0

    result = types.SimpleNamespace(config={"cell": cells[0]}, error=None, metrics_dataframe=None,
                                   metrics={"val_knn_top1": 30.0, "epoch": 1})  # fmt: skip
    fake_tune = types.SimpleNamespace(
        with_parameters=lambda f, **kw: f, with_resources=lambda f, r: f,
        RunConfig=lambda **kw: None, TuneConfig=lambda **kw: None, grid_search=lambda x: x,
        Tuner=lambda *a, **kw: "tuner")  # fmt: skip
    for module in (grid, tuner):
        monkeypatch.setattr(module, "tune", fake_tune)
    monkeypatch.setattr(tuner, "concurrency", lambda *a: 1)
    monkeypatch.setattr(tuner, "driver_resources", lambda: {})
    monkeypatch.setattr(tuner, "fit", lambda t: (FakeGrid([result]), False))
    monkeypatch.setattr(tuner, "add_test_scores", lambda *a: pytest.fail("scored the test split"))
    args = argparse.Namespace(workers_per_trial=1, cpus_per_worker=1, max_concurrent=None,
                              use_gpu=False, gpus_per_worker=None, test_eval=None, trials=2,
                              resume=False, seed=0)  # fmt: skip
    base = PretrainConfig()
    # a grid continues by rerunning (its cells are cached), not with --resume
    with pytest.raises(trial.Interrupted, match="1 trial.s. unfinished.*same command again"):
        grid.run(args, base, cells, tmp_path)
    table = pd.read_csv(tmp_path / "results.csv")
    assert list(table["trial"]) == [cell_name(cells[0])] and table["val_knn_top1"][0] == 30.0
    assert "**Interrupted**: 1 trial(s) unfinished" in (tmp_path / "summary.md").read_text()

    def interrupted(*a):
        raise trial.Interrupted(1, tmp_path)

    monkeypatch.setattr(study, "run", interrupted)
    monkeypatch.setattr("tune.cluster.connect", lambda address: "a fake cluster")
    monkeypatch.setattr("tune.cluster.plan_resources", lambda *a, **kw: ("worker", 0.0))
    monkeypatch.setattr(sweep, "prepare_data", lambda base: None)
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "s"), "--confirm", "3"]) == 130


def test_script_exits_130_when_interrupted(tiny_data, tmp_path):
    """Run as `python tune/sweep.py` the file is __main__, a module apart from tune.sweep:
    the Interrupted that tune/tuner.py raises (tune.trial's) must still be caught."""
    code = (
        "import runpy, sys\n"
        "import tune.cluster, tune.study, tune.trial\n"
        "def interrupted(*a):\n"
        "    raise tune.trial.Interrupted(2, 'OUT')\n"
        "tune.study.run = interrupted\n"
        "tune.cluster.connect = lambda address: 'a fake cluster'\n"
        "tune.cluster.plan_resources = lambda *a, **kw: ('worker', 0.0)\n"
        f"sys.argv = ['tune/sweep.py', '--data', {tiny_data!r}, '--out', {str(tmp_path)!r}]\n"
        "runpy.run_path('tune/sweep.py', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "interrupted with 2 trial(s) unfinished" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_confirmation_by_another_protocol_scores_each_runs_checkpoint(tmp_path, monkeypatch):
    """--confirm-protocol semi: the grid runs without kNN test scores; each run's final
    checkpoint is fine-tuned on the cell's seed's labelled share, cached per cell."""
    import argparse

    import mcc.evaluate
    from mcc import presets
    from mcc.config import ConfigError, PretrainConfig, to_dict
    from tune import confirm, grid
    from tune.summary import add_confirmations

    table = pd.DataFrame({"trial": ["a"], "param:loss.tau": [0.3], "val_knn_top1": [30.0],
                          "status": ["completed"]})  # fmt: skip
    ran = {}

    def fake_grid(args, base, cells, out, space=None):
        ran.update(test_eval=args.test_eval)
        return pd.DataFrame({"trial": [cell_name(c) for c in cells],
                             "status": ["completed"] * len(cells),
                             "test_knn_top1": [50.0] * len(cells),
                             "checkpoint": [str(tmp_path / f"{cell_name(c)}.pt") for c in cells]})

    calls = []

    def fake_evaluate(cfg, ckpt, out, progress=True):
        calls.append((cfg.protocol, cfg.label_fraction, cfg.seed, Path(ckpt).stem))
        assert (cfg.optim.batch_size, cfg.optim.epochs) == (8, presets.EVALUATE["semi"][
            "optim.epochs"])  # the semi recipe, not the small one's 1-2 steps an epoch
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({**to_dict(cfg), "model": {"as": "trained"},
                                                     "checkpoint": ckpt}))  # as evaluate()
        top1 = 70.0 + cfg.seed if "tau" in str(ckpt) else 20.0 + cfg.seed
        (out / "result.json").write_text(json.dumps({"top1": top1, "checkpoint": ckpt}))
        return {"top1": top1}

    monkeypatch.setattr(grid, "run", fake_grid)
    monkeypatch.setattr(mcc.evaluate, "evaluate", fake_evaluate)
    (tmp_path / "summary.md").write_text("# sweep\n")
    for c in [{"loss.tau": 0.3}, confirm.CONTROL]:
        for s in (1, 2, 3):
            (tmp_path / f"{cell_name({**c, 'optim.epochs': 2, 'seed': s})}.pt").write_text("x")
    args = argparse.Namespace(confirm=3, test_eval=None, confirm_protocol="semi",
                              confirm_fraction=0.1, confirm_epochs=2)  # fmt: skip
    res = confirm.confirm(args, PretrainConfig(seed=0), table, tmp_path)
    assert ran["test_eval"] == "all" and len(calls) == 6  # kNN scores kept as well
    assert {(p, f, s) for p, f, s, _ in calls} == {("semi", 0.1, s) for s in (1, 2, 3)}
    assert res["metric"] == "test_semi_top1" and res["best"]["test_semi_top1"] == [71, 72, 73]
    assert res["control"]["mean"] == 22.0 and res["resolved"]
    assert json.loads((tmp_path / "confirm-semi-0.1.json").read_text())["label_fraction"] == 0.1
    calls.clear()  # a second run reads the cached scores
    assert confirm.confirm(args, PretrainConfig(seed=0), table, tmp_path)["difference"] == 50.0
    assert not calls
    # a changed recipe neither reads the old recipe's results nor overwrites them: it stops,
    # naming the setting that changed
    monkeypatch.setitem(presets.EVALUATE, "semi", {**presets.EVALUATE["semi"],
                                                   "optim.epochs": 61})  # fmt: skip
    with pytest.raises(ConfigError, match=r"other settings \(optim.epochs: 60 -> 61\).*another"):
        confirm.confirm(args, PretrainConfig(seed=0), table, tmp_path)
    assert not calls
    args.confirm_fraction = 0.2  # another share is scored anew, not read from 0.1's cache
    confirm.confirm(args, PretrainConfig(seed=0), table, tmp_path)
    assert len(calls) == 6 and {f for _, f, _, _ in calls} == {0.2}
    add_confirmations(tmp_path)  # both shares in the summary
    summary = (tmp_path / "summary.md").read_text()
    assert "fine-tune with 0.1 of each class's labels" in summary
    assert "fine-tune with 0.2 of each class's labels" in summary

    # a run that did not finish is not scored: its checkpoint is a partial encoder
    def partial_grid(args, base, cells, out, space=None):
        table = fake_grid(args, base, cells, out)
        table.loc[0, "status"] = "error"
        return table

    monkeypatch.setattr(grid, "run", partial_grid)
    args.confirm_fraction = 0.3
    res = confirm.confirm(args, PretrainConfig(seed=0), table, tmp_path)
    assert len(res["best"]["test_semi_top1"]) == 2 and res["difference"] is None


def test_fit_tells_an_interrupted_tune_run():
    """Tune's SIGINT handler puts the previous one back on the first Ctrl-C and otherwise
    stays installed; its cleanup may mark every trial terminated, so that is the signal.
    fit() always leaves the previous handler in place."""
    from tune import tuner

    class FakeTuner:
        def __init__(self, interrupt: bool) -> None:
            self.interrupt = interrupt

        def fit(self):
            before = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, lambda *a: None)  # Tune's handler
            if self.interrupt:
                signal.signal(signal.SIGINT, before)  # what it does on the first SIGINT
            return "grid"

    before = signal.getsignal(signal.SIGINT)
    assert tuner.fit(FakeTuner(False)) == ("grid", False)
    assert tuner.fit(FakeTuner(True)) == ("grid", True)
    assert signal.getsignal(signal.SIGINT) is before


def test_summary_names_the_fixed_settings_and_no_nan_for_unset_parameters(tmp_path):
    """A confirmation's control sets no tau: its row shows the value in force; the summary
    lists where every trial departs from the paper's defaults."""
    from mcc import presets
    from mcc.config import PretrainConfig, apply_overrides
    from tune.summary import write_summary
    from tune.tuner import fill_in_force

    base = apply_overrides(PretrainConfig(), presets.PRETRAIN["sweep"])
    rows = [
        {"trial": "a", "param:loss.nce": 1.0, "param:loss.tau": 0.3, "val_knn_top1": 40.0,
         "epochs": 8, "status": "completed", "checkpoint": ""},
        {"trial": "b", "param:loss.nce": 0.0, "val_knn_top1": 15.0, "epochs": 8,
         "status": "completed", "checkpoint": "", "param:loss.interp": 0.0},
    ]  # fmt: skip
    table = fill_in_force(pd.DataFrame(rows), base)
    assert table["param:loss.tau"].tolist() == [0.3, base.loss.tau]
    write_summary(table, {}, base, tmp_path, grid=True)
    text = (tmp_path / "summary.md").read_text()
    assert "nan" not in text.lower()
    assert "`optim.optimizer=adam`" in text and "`sampling.speeds=1,2`" in text
    assert "data.path" not in text
    # every parameter column next to the trial's name, even one only a later cell set
    head = next(line for line in text.splitlines() if line.startswith("| trial"))
    assert head.startswith("| trial | param:loss.nce | param:loss.tau | param:loss.interp |")


def test_default_search_is_the_loss_weights_and_a_narrow_tau_range():
    from tune.sweep import build_parser, search_space

    space = search_space(build_parser().parse_args([]))
    assert list(space) == ["loss.triplet", "loss.nce", "loss.interp", "loss.tau"]
    tau = space["loss.tau"]
    assert (tau.low, tau.high, tau.log) == (0.1, 0.3, True)
    # naming a parameter replaces the default: the built-in range, nothing else
    only = search_space(build_parser().parse_args(["--search", "loss.tau"]))
    assert list(only) == ["loss.tau"] and (only["loss.tau"].low, only["loss.tau"].high) == (0.05, 1)
