import atexit
import os
import shutil
import tempfile
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


# ------------------------------------------------------------------------ the sample data
# The real sample data (real recordings of each raw format; its README says what they hold):
# the folder MCC_SHARED_DATA names, else shared/data beside the checkout (CI has it there).
# A folder MCC_SHARED_DATA names that does not exist means "absent": no fallback.
REAL_FORMATS = ("ntu", "ntu-meta", "kinetics", "pkummd", "nwucla", "natops")
REAL_DATA = Path(
    os.environ.get("MCC_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
_lacking = [d for d in REAL_FORMATS if not (REAL_DATA / d).is_dir()]
HAVE_REAL_DATA = not _lacking
_from = "MCC_SHARED_DATA" if os.environ.get("MCC_SHARED_DATA") else "default: beside the checkout"
REAL_DATA_MISSING = (
    ""
    if HAVE_REAL_DATA
    else f"the real sample data is not at {REAL_DATA} ({_from}; "
    + ("no such folder" if not REAL_DATA.is_dir() else f"no {', '.join(_lacking)}")
    + "): set MCC_SHARED_DATA=DIR to its folder"
)
REQUIRE_REAL_DATA = os.environ.get("MCC_REQUIRE_REAL_DATA") == "1"

# The folder every test in the formats reads: the real data, or a generated stand-in with
# the same structure and file names (tests/raw_formats.py) for the tests of mechanics,
# errors and fuzzing. Tests of facts of the real recordings are marked `real_data`.
if HAVE_REAL_DATA:
    DATA = REAL_DATA
else:
    from raw_formats import build_standin

    DATA = build_standin(Path(tempfile.mkdtemp(prefix="mcc-standin-data-")) / "data")
    atexit.register(shutil.rmtree, DATA.parent, ignore_errors=True)

NATOPS_NPZ = DATA / "natops" / "natops.npz"
NATOPS_LAYOUT = DATA / "natops" / "natops_layout.json"

# Marks a test of facts of the real recordings: skipped without them, failed without them
# under MCC_REQUIRE_REAL_DATA=1 (CI).
real_data = pytest.mark.real_data
_REAL_SKIPPED: list[str] = []


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The folder of raw sample files: the real data when present, else the stand-in."""
    return DATA


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "real_data: checks facts of the real sample recordings (MCC_SHARED_DATA)"
    )


def _needs_absent_real_data(item) -> bool:
    return item.get_closest_marker("real_data") is not None and not HAVE_REAL_DATA


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if _needs_absent_real_data(item) and not REQUIRE_REAL_DATA:
        _REAL_SKIPPED.append(item.nodeid)
        pytest.skip(REAL_DATA_MISSING)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    if _needs_absent_real_data(item):  # under MCC_REQUIRE_REAL_DATA=1: a failure, not a skip
        _REAL_SKIPPED.append(item.nodeid)
        pytest.fail(f"MCC_REQUIRE_REAL_DATA=1: {REAL_DATA_MISSING}", pytrace=False)


def pytest_terminal_summary(terminalreporter):
    if _REAL_SKIPPED:
        what = "failed (MCC_REQUIRE_REAL_DATA=1)" if REQUIRE_REAL_DATA else "skipped"
        n = len(_REAL_SKIPPED)
        terminalreporter.write_line(
            f"{n} real-sample test{'s' * (n != 1)} {what}: {REAL_DATA_MISSING}; the other "
            f"format tests ran on a generated stand-in (tests/raw_formats.py)"
        )


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


# ------------------------------------------------------------------------ object storage
@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3 API on localhost (moto's server), for the URI tests: its endpoint URL.
    Skipped when moto is not installed (the `test` extra has it)."""
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
