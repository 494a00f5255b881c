"""Ray Train on object storage: data, checkpoints and the run folder on a real S3 API
(moto's server), reached from the Train workers through the endpoint and credentials that
tune/cluster.py passes on to the job; a driver killed mid-run resumes from the bucket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from conftest import TINY  # noqa: E402
from test_uri import _keys, s3  # noqa: E402, F401  (the bucket fixture)

from mcc import files  # noqa: E402
from mcc.datasets.synthetic import generate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_ray_train_reads_writes_and_resumes_on_s3(ray_cluster, s3, tmp_path):  # noqa: F811
    client, bucket = s3
    data, out = f"s3://{bucket}/data", f"s3://{bucket}/runs/ray"
    generate(data, TINY)
    cmd = [sys.executable, str(REPO / "tune" / "train.py"), "--data", data, "--out", out,
           "--preset", "tiny", "--set", "optim.epochs=3", "--set", "threads=1",
           "--address", ray_cluster.address, "--eval", "knn", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "first.log").open("w"))  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and not any(
        "/checkpoint_" in k for k in _keys(client, bucket, "runs/ray/ray/")
    ):
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, after its first checkpoint
    proc.wait()
    assert "runs/ray/result.json" not in _keys(client, bucket, "runs/ray/")
    r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resuming after epoch" in r.stdout
    result = json.loads(files.read_bytes(f"{out}/result.json"))
    assert result["final"]["epoch"] == 2 and result["storage"] == f"{out}/ray/pretrain"
    assert result["checkpoint"] == f"{out}/checkpoint.pt"
    lines = files.read_bytes(f"{out}/metrics.jsonl").decode().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [0, 1, 2]
    assert "top1" in json.loads(files.read_bytes(f"{out}/eval-knn/result.json"))
