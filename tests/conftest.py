from pathlib import Path

import pytest

from mcc.synthetic import SyntheticConfig, generate

TINY = SyntheticConfig(
    num_classes=4,
    train_per_class=8,
    test_per_class=4,
    min_frames=40,
    max_frames=90,
    num_subjects=4,
    seed=3,
)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A 4-class synthetic set: 32 train, 16 test sequences."""
    path = tmp_path_factory.mktemp("tiny_synthetic")
    generate(path, TINY)
    return str(path)


# The real data in shared/data/, beside the project root (CI has it there too).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NATOPS_NPZ = SHARED_DATA / "natops" / "natops.npz"
NATOPS_LAYOUT = SHARED_DATA / "natops" / "natops_layout.json"
