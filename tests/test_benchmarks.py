"""The benchmark scripts as a person runs them. mcc_vs_scratch.py end to end on the tiny set:
one row per protocol and labelled fraction, the labelled subsets saved, wall times, and
finished runs reused. gpu_check.py's dry run on the CPU (its Ray checks are run by hand: no
Ray here) and its refusal of a device this machine lacks. pretrain_step.py on --device cpu."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "mcc_vs_scratch.py"


def compare(data: str, out: Path, *extra: str, check: bool = True):
    cmd = [sys.executable, str(SCRIPT), "--data", data, "--out", str(out), "--preset", "tiny",
           "--seeds", "0", "1", "--protocols", "knn", "semi", "--fractions", "0.25", "0.5",
           "--pretrain-set", "optim.epochs=1", *extra]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=check)
    return done.stdout if check else done


def test_compare_rows_subsets_times_and_reuse(tiny_data, tmp_path):
    out = tmp_path / "cmp"
    first = compare(tiny_data, out)
    assert first.count("pretraining mcc") == 2
    md = (out / "summary.md").read_text()
    assert "--fractions 0.25 0.5" in md  # the command that printed the table
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if "| " in line}
    assert {"knn", "finetune 25%", "finetune 50%"} <= set(rows)
    assert "random init" in rows["protocol"] and "s per run" in rows["protocol"]
    assert "pretraining, s per seed: MCC" in md
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"command", "protocols", "pretrain_wall_time_s"}
    assert len(summary["protocols"]["finetune 25%"]["top1"]["scratch"]) == 2
    assert len(summary["protocols"]["finetune 25%"]["wall_time_s"]["scratch"]) == 2
    assert len(summary["pretrain_wall_time_s"]["MCC"]) == 2
    # the tiny set has 8 training sequences per class: 2 and 4 labelled per class
    for fraction, per_class in (("25pct", 2), ("50pct", 4)):
        for init in ("MCC", "scratch"):
            run = out / "seed1" / f"finetune_{fraction}-{init}"
            ids = json.loads((run / "labelled_ids.json").read_text())
            result = json.loads((run / "result.json").read_text())
            assert len(ids) == 4 * per_class and result["labelled_per_class"] == [per_class] * 4
    # rerun: every run is reused, the same table comes back
    again = compare(tiny_data, out)
    assert "pretraining mcc" not in again
    assert (out / "summary.md").read_text() == md
    # a finished run is never reused for other settings
    other = compare(tiny_data, out, "--semi-set", "optim.epochs=3", check=False)
    assert other.returncode != 0 and "made with other settings (optim.epochs: " in other.stderr
    assert "use another --out" in other.stderr


def bench(name: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(BENCHMARKS / name), *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_gpu_check_dry_run_on_cpu(tiny_data, tmp_path):
    out = tmp_path / "check"
    done = bench("gpu_check.py", "--device", "cpu", "--skip", "ray", "--data", tiny_data,
                 "--preset", "tiny", "--out", str(out), "--width", "0.125", "--batch", "4",
                 "--steps", "1")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    heads = [line.split(":")[0] for line in lines]
    assert heads == ["PASS data", "PASS pretrain", "PASS knn", "PASS throughput", "SKIP ray",
                     "SKIP ray-scaling", "OK"]  # fmt: skip
    assert "records fp32 on cpu and its encoder reloads on the CPU" in lines[1]
    assert "top-1" in lines[2] and "fp32" in lines[3] and "bf16" in lines[3]
    assert lines[-1].startswith("OK: 4 passed, 0 failed, 2 skipped on cpu")
    assert (out / "pretrain" / "checkpoint.pt").exists() and (out / "knn" / "result.json").exists()
    assert "epoch 2/2" in (out / "pretrain.log").read_text()  # the check's own output


def test_gpu_check_fails_a_check_and_skips_what_builds_on_it(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    done = bench("gpu_check.py", "--device", "cpu", "--only", "knn", "--data", str(not_a_folder),
                 "--out", str(tmp_path / "check"))  # fmt: skip
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines[0].startswith("FAIL data: ") and "(log: " in lines[0]
    assert lines[1] == "SKIP pretrain: needs the data check, which did not pass"
    assert lines[2] == "SKIP knn: needs the pretrain check, which did not pass"
    assert lines[-1].startswith("FAILED: 0 passed, 1 failed, 5 skipped")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_gpu_check_without_cuda_is_one_error_line(tmp_path):
    done = bench("gpu_check.py", "--out", str(tmp_path / "check"))
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("error: --device cuda: no CUDA device is available here")
    assert not (tmp_path / "check").exists()


def test_pretrain_step_on_cpu():
    small = ["--set", "model.width=0.125", "--batch", "2", "--steps", "1", "--warmup", "0"]
    done = bench("pretrain_step.py", "--device", "cpu", *small, "--peak-seconds", "0.2")
    assert done.returncode == 0, done.stderr
    head, peaks, fp32, bf16 = done.stdout.splitlines()
    assert ", cpu, " in head and peaks.startswith("matmul peak: fp32 ")
    assert fp32.startswith("fp32: stgcn (joint stream), width 0.125, batch 2x3 clips")
    assert bf16.startswith("bf16: ") and "clips/s" in bf16 and "% of the bf16 matmul peak" in bf16
