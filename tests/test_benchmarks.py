"""benchmarks/mcc_vs_scratch.py end to end on the tiny set: one row per protocol and
labelled fraction, the labelled subsets saved, wall times, and finished runs reused."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mcc_vs_scratch.py"


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
