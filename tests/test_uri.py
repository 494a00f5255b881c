"""Datasets and runs in object storage: a real S3 API (moto's server, tests/conftest.py) read
and written through pyarrow's file systems, exactly as a user's bucket would be."""

import json
import uuid

import pytest
from conftest import TINY

from mcc import files
from mcc.cli import main
from mcc.config import DataConfig
from mcc.data import train_ids
from mcc.datasets.synthetic import generate
from mcc.shards import MANIFEST, load_samples, read_manifest


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    """A fresh bucket on the moto server, with the standard AWS variables pointing at it;
    returns a boto3 client and the bucket's name."""
    boto3 = pytest.importorskip("boto3")
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    files._store.cache_clear()
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"mcc-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    files._store.cache_clear()


def _keys(client, bucket, prefix=""):
    found = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["LastModified"] for o in found}


def test_a_dataset_prepared_to_s3_reads_as_the_local_one(s3, tiny_data):
    client, bucket = s3
    uri = f"s3://{bucket}/tiny"
    generate(uri, TINY)
    assert read_manifest(uri).to_json() == read_manifest(tiny_data).to_json()
    remote, local = load_samples(uri), load_samples(tiny_data)
    assert [s.sample_id for s in remote] == [s.sample_id for s in local]
    assert all((a.joints == b.joints).all() for a, b in zip(remote, local))
    assert train_ids(DataConfig(path=uri)) == train_ids(DataConfig(path=tiny_data))
    keys = _keys(client, bucket, "tiny/")
    assert f"tiny/{MANIFEST}" in keys
    assert max(keys.values()) == keys[f"tiny/{MANIFEST}"]  # the manifest is the last object


def test_a_dataset_without_its_manifest_is_not_a_prepared_dataset(s3, capsys):
    client, bucket = s3
    uri = f"s3://{bucket}/half"
    generate(uri, TINY)
    client.delete_object(Bucket=bucket, Key=f"half/{MANIFEST}")  # as before the manifest
    assert main(["inspect", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a prepared dataset" in err


def test_pretrain_evaluate_and_inspect_with_s3_data_and_runs(s3, capsys):
    client, bucket = s3
    data, run, ev = (f"s3://{bucket}/{x}" for x in ("data", "runs/pre", "runs/knn"))
    generate(data, TINY)
    assert main(["pretrain", "--data", data, "--out", run, "--preset", "tiny",
                 "--set", "optim.epochs=1", "--no-progress"]) == 0  # fmt: skip
    keys = _keys(client, bucket, "runs/pre/")
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "result.json"):
        assert f"runs/pre/{name}" in keys
    assert max(keys.values()) == keys["runs/pre/result.json"]
    result = json.loads(files.read_bytes(f"{run}/result.json"))
    assert result["checkpoint"] == f"{run}/checkpoint.pt"
    assert main(["evaluate", "--data", data, "--checkpoint", run, "--out", ev,
                 "--preset", "tiny", "--set", "protocol=knn", "--no-progress"]) == 0  # fmt: skip
    assert "top1" in json.loads(files.read_bytes(f"{ev}/result.json"))
    capsys.readouterr()
    assert main(["inspect", data]) == 0
    assert "4 classes" in capsys.readouterr().out


def test_a_missing_bucket_is_one_line(s3, capsys):
    assert main(["inspect", "s3://no-such-bucket-mcc/ntu60"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_prepare_of_a_raw_set_to_s3_equals_the_local_one_and_resumes(s3, tmp_path, capsys):
    """`python -m mcc prepare ntu60 --out s3://...`: its progress records and shards are
    objects; a rerun into the same URI finishes the same import (nothing redone)."""
    from conftest import DATA

    client, bucket = s3
    uri = f"s3://{bucket}/ntu60"
    args = ["prepare", "ntu60", "--src", str(DATA / "ntu"), "--no-progress", "--workers", "1"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    assert main([*args, "--out", uri]) == 0
    assert read_manifest(uri).counts == read_manifest(tmp_path / "local").counts
    assert [s.sample_id for s in load_samples(uri)] == [
        s.sample_id for s in load_samples(tmp_path / "local")
    ]
    assert any(k.startswith("ntu60/.progress/") for k in _keys(client, bucket, "ntu60/"))
    assert main([*args, "--out", uri]) == 0  # the recorded chunks are skipped
    capsys.readouterr()
