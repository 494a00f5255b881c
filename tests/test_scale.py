"""benchmarks/scale.py: the streaming path's memory stays flat as the dataset grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("psutil")

REPO = Path(__file__).resolve().parents[1]


def test_peak_memory_is_flat_from_1x_to_4x(tmp_path):
    """One epoch at 1x and 4x a small set (its own local Ray, in a subprocess): the peak RSS
    of the driver and of the Train worker grow by less than 1.5x. No timings asserted."""
    out = tmp_path / "rows.json"
    # its own Ray: not the session's cluster that other tests may have connected to
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--work", str(tmp_path),
         "--sizes", "1,4", "--per-class", "4", "--json", str(out)],
        check=True, env=env, cwd=REPO, timeout=500,
    )  # fmt: skip
    rows = json.loads(out.read_text())
    one, four = rows["1"], rows["4"]
    assert four["train_samples"] == 4 * one["train_samples"]
    assert one["sampling"] == four["sampling"] == "ray-data"
    assert four["peak_driver_rss_mb"] < 1.5 * one["peak_driver_rss_mb"]
    assert max(four["peak_worker_rss_mb"]) < 1.5 * max(one["peak_worker_rss_mb"])
