"""Joining or starting Ray, and checking that a run fits the cluster before it starts.

One rule for every entry point (docs/ray.md, "ray job submit"): with an
address (`--address auto`, an explicit one, or RAY_ADDRESS, which a `ray job submit` job has)
connect to that cluster; otherwise start a local Ray sized to this machine. A local Ray gets
the repository on PYTHONPATH, so its workers import `mcc` and `tune` from a plain checkout.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import ray

from mcc.config import ConfigError

REPO = Path(__file__).resolve().parents[1]

# Quieter logs; set only where the user has not set them.
QUIET = {
    "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS": "1",
}

# A trial driver (a Tune trial that builds a TorchTrainer) holds this instead of a CPU, so
# the CPUs go to Train workers and Ray Data (docs/ray.md, "Two hangs on small machines").
TRIAL_DRIVER = "trial_driver"


# Variables this process passes on to every task and actor of its Ray job (the raylet, not
# this process, starts them): the fault-injection point (tune/worker.py) and the object
# store's endpoint and credentials (mcc/files.py), so trials and their Train workers reach
# what the command line was given.
FORWARD_ENV = ("MCC_FAULT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION")  # fmt: skip


def forwarded_env() -> dict[str, str]:
    """FORWARD_ENV's variables that are set; none in a Ray job's driver, whose runtime env
    (`ray job submit --runtime-env-json`) already reaches every worker and may not be given
    the same keys twice."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        return {}
    return {k: os.environ[k] for k in FORWARD_ENV if os.environ.get(k)}


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Connect to `address` / RAY_ADDRESS, or start a local Ray. Returns a description."""
    for k, v in QUIET.items():
        os.environ.setdefault(k, v)
    if ray.is_initialized():
        return "the Ray session already running in this process"
    address = address or os.environ.get("RAY_ADDRESS")
    env = forwarded_env()
    if address:
        ray.init(address=address, logging_level="WARNING",
                 runtime_env={"env_vars": env} if env else None)  # fmt: skip
        return f"the Ray cluster at {address}"
    cpus = num_cpus or os.cpu_count() or 1
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=cpus,
        resources={TRIAL_DRIVER: 8},
        runtime_env={"env_vars": {"PYTHONPATH": path, **{k: os.environ[k] for k in QUIET},
                                  **env}},  # fmt: skip
        logging_level="WARNING",
    )
    return f"a local Ray with {cpus} CPUs"


def in_job_working_dir() -> bool:
    """Whether this process runs in Ray's copy of a job's working dir (`ray job submit
    --working-dir`), which Ray unpacks under runtime_resources/working_dir_files."""
    try:
        return "working_dir_files" in os.getcwd()
    except FileNotFoundError:  # that copy is already gone
        return True


def warn_if_relative_in_job(out: str) -> None:
    """A Ray job runs in a temporary copy of its working dir: relative output paths vanish."""
    if "://" not in str(out) and not Path(out).is_absolute() and in_job_working_dir():
        print(
            f"warning: --out {out} is relative; a Ray job runs in a temporary copy of its "
            f"working dir, so pass an absolute or shared path to keep the results",
            file=sys.stderr,
        )


def alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def worker_gpus(use_gpu: bool, gpus_per_worker: float | None) -> float:
    """The GPUs each Train worker holds: none without --use-gpu, else --gpus-per-worker
    (default 1; a fraction lets 1-worker runs, e.g. sweep trials, share a GPU)."""
    if not use_gpu:
        if gpus_per_worker is not None:
            raise ConfigError(f"--gpus-per-worker={gpus_per_worker:g}: add --use-gpu")
        return 0.0
    gpus = 1.0 if gpus_per_worker is None else float(gpus_per_worker)
    if gpus <= 0:
        raise ConfigError(f"--gpus-per-worker={gpus:g}: must be > 0 (or leave out --use-gpu)")
    return gpus


def plan_resources(
    num_workers: int,
    cpus_per_worker: float,
    use_gpu: bool,
    sampling: str = "auto",
    gpus_per_worker: float | None = None,
) -> tuple[str, float]:
    """Check that the Train workers fit the cluster and decide where sampling runs.

    Returns (sampling, data_cpus). Ray Data tasks need CPUs the workers do not hold: if at
    least one CPU is left after the workers, the training split streams through Ray Data
    ('ray-data'); if not (e.g. 2 workers x 1 CPU on a 2-CPU machine), its tasks would wait
    forever for a CPU, so each worker streams its own rows from the shards ('worker').
    'exact' (opt-in, small data: the single-process batches) also runs Ray Data tasks, of up
    to `data_cpus` CPUs each. Raises ConfigError at once when the workers cannot be placed
    (CPUs, or with use_gpu `worker_gpus` GPUs each), instead of waiting.
    """
    if num_workers < 1:
        raise ConfigError(f"--num-workers={num_workers}: need at least 1")
    if cpus_per_worker <= 0:
        raise ConfigError(f"--cpus-per-worker={cpus_per_worker}: must be > 0")
    nodes = alive_nodes()
    node_cpus = [n["Resources"].get("CPU", 0.0) for n in nodes]
    total = sum(node_cpus)
    need = num_workers * cpus_per_worker
    if need > total or cpus_per_worker > max(node_cpus, default=0):
        raise ConfigError(
            f"--num-workers={num_workers} x --cpus-per-worker={cpus_per_worker} does not fit: "
            f"the cluster has {total:g} CPUs on {len(nodes)} node(s), at most "
            f"{max(node_cpus, default=0):g} on one node"
        )
    check_gpus(num_workers, worker_gpus(use_gpu, gpus_per_worker), nodes)
    free = total - need
    if sampling == "auto":
        sampling = "ray-data" if free >= 1 else "worker"
    if sampling not in ("ray-data", "worker", "exact"):
        raise ConfigError(f"--sampling={sampling!r}: choose auto, ray-data, worker or exact")
    if sampling in ("ray-data", "exact") and free <= 0:
        raise ConfigError(
            f"--sampling={sampling} needs a CPU the workers do not hold; the workers take all "
            f"{total:g}. Use fewer workers, --cpus-per-worker below {total / num_workers:g}, "
            f"or --sampling=worker"
        )
    return sampling, min(1.0, free) if sampling != "worker" else 0.0


def check_gpus(num_workers: int, gpus: float, nodes: list[dict]) -> None:
    """ConfigError unless `num_workers` workers of `gpus` GPUs each (0: none) fit `nodes`:
    in total, and each worker's share on one node. A fraction of a GPU is for 1-worker runs
    (trials sharing a GPU): NCCL refuses two ranks of one process group on the same GPU."""
    if gpus <= 0:
        return
    if gpus < 1 and num_workers > 1:
        raise ConfigError(
            f"--gpus-per-worker={gpus:g} with {num_workers} workers: workers of one run may "
            f"not share a GPU (NCCL refuses two ranks on one device); use whole GPUs, or one "
            f"worker per run"
        )
    node_gpus = [n["Resources"].get("GPU", 0.0) for n in nodes]
    total = sum(node_gpus)
    if total == 0:
        raise ConfigError(
            f"--use-gpu: the cluster has no GPUs ({len(nodes)} node(s)); leave out --use-gpu "
            f"to train on CPUs, or join a cluster with GPU nodes (--address)"
        )
    if num_workers * gpus > total or gpus > max(node_gpus):
        raise ConfigError(
            f"--use-gpu with {num_workers} worker(s) x --gpus-per-worker={gpus:g} does not "
            f"fit: the cluster has {total:g} GPUs on {len(nodes)} node(s), at most "
            f"{max(node_gpus):g} on one node"
        )


def check_storage(storage_path: str) -> None:
    """Warn when a local folder is the storage of a multi-node run: every node must reach it."""
    nodes = alive_nodes()
    if "://" not in storage_path and len(nodes) > 1:
        warnings.warn(
            f"storage path {storage_path} is a local folder and the cluster has {len(nodes)} "
            f"nodes: checkpoints are written by the worker's node and read back by others, so "
            f"every node must see this folder at the same path (NFS or another shared mount). "
            f"Otherwise pass --storage-path s3://..., gs://... or another URI all nodes reach.",
            stacklevel=2,
        )
