import os
from pathlib import Path

import pytest

from mcc.datasets.synthetic import generate, synthetic_config

# The static-cues variant: some sequences have a second person, so the tests cover padded
# bodies; the tests check mechanics, not what the default set lets MCC learn.
TINY = synthetic_config({
    "variant": "static-cues",
    "num_classes": 4,
    "train_per_class": 8,
    "test_per_class": 4,
    "min_frames": 40,
    "max_frames": 90,
    "num_subjects": 4,
    "seed": 3,
})  # fmt: skip


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A 4-class synthetic set: 32 train, 16 test sequences."""
    path = tmp_path_factory.mktemp("tiny_synthetic")
    generate(path, TINY)
    return str(path)


# The real data: shared/data/ beside the project root (CI has it there too), or the folder
# that MCC_SHARED_DATA names (a clone elsewhere).
SHARED_DATA = Path(
    os.environ.get("MCC_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


def pytest_configure(config):
    """Many tests read the real data at import: without it, one clear line instead of a
    collection error per module."""
    if not (SHARED_DATA / "natops").is_dir():
        pytest.exit(
            f"the real test data is not at {SHARED_DATA} (natops/, ntu/, kinetics/, pkummd/): "
            "run the tests from a checkout beside shared/, or set MCC_SHARED_DATA=DIR",
            returncode=4,
        )


NATOPS_NPZ = SHARED_DATA / "natops" / "natops.npz"
NATOPS_LAYOUT = SHARED_DATA / "natops" / "natops_layout.json"


@pytest.fixture(scope="session")
def ray_cluster():
    """The one Ray session every Ray test shares: a real 2-node cluster on this machine
    (`ray.cluster_utils.Cluster`; 2 logical CPUs per node, so 4 on a 2-core machine), with the
    dashboard and job server on the head for `ray job submit`. Stopped by its own handle."""
    pytest.importorskip("ray")
    import os
    import socket

    from tune.cluster import QUIET, TRIAL_DRIVER

    os.environ.update(QUIET)
    os.environ["RAY_AUTH_MODE"] = "disabled"  # token auth is for real clusters (README)
    import ray
    from ray.cluster_utils import Cluster

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = 200 * 1024 * 1024
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "resources": {TRIAL_DRIVER: 8},
            "include_dashboard": True,
            "dashboard_port": port,
            "object_store_memory": store,
        },
    )
    cluster.add_node(num_cpus=2, object_store_memory=store)
    cluster.wait_for_nodes()
    repo = str(Path(__file__).resolve().parents[1])
    ray.init(
        address=cluster.address,
        runtime_env={"env_vars": {"PYTHONPATH": repo, **QUIET}},
        logging_level="WARNING",
    )
    cluster.dashboard_url = f"http://127.0.0.1:{port}"
    yield cluster
    ray.shutdown()
    cluster.shutdown()
