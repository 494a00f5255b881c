import dataclasses

import numpy as np
import pytest

from mcc.config import ConfigError
from mcc.datasets.synthetic import (
    LOOPS,
    VARIANTS,
    SyntheticConfig,
    _angles,
    class_name,
    class_patterns,
    generate,
    synthetic_config,
)
from mcc.shards import load_samples, read_manifest


def test_classes_differ_in_relative_tempo_then_in_any_two_loops():
    def differ(a, b):
        return sum(x != y for x, y in zip(a, b))

    table = class_patterns(16)
    assert len(table) == 16 and all(len(p) == len(LOOPS) for p in table)
    tempos = [tuple(t for _, t in p) for p in table]
    # no class is another one played faster: some loop always runs at tempo 1
    assert all(0 in t for t in tempos)
    assert all(differ(a, b) >= 2 for i, a in enumerate(tempos) for b in tempos[:i])
    big = class_patterns(120)
    assert big[:16] == table and len(set(big)) == 120
    assert all(differ(a, b) >= 2 for i, a in enumerate(big) for b in big[:i])
    assert len({class_name(p) for p in big}) == 120
    assert class_patterns(12, seed=3) == class_patterns(12, seed=3) != class_patterns(12, seed=4)


def test_direction_changes_the_order_of_poses_not_the_poses():
    """A loop run backwards visits the same angles: time-reversing one class's trajectory
    gives the mirrored pattern, so the pose set carries no class."""
    cfg = SyntheticConfig(sway=0.0, idle_frames=0, amplitude_jitter=0.0, period_jitter=0.0)
    fwd = tuple((1, 0) for _ in LOOPS)
    back = tuple((-1, 0) for _ in LOOPS)
    a = _angles(fwd, cfg, np.random.default_rng(3))
    b = _angles(back, cfg, np.random.default_rng(3))
    # the same loops, each side component negated: identical "out" components ...
    out_dofs = sorted({d for out, _ in LOOPS for d in out})
    side_dofs = sorted({d for _, side in LOOPS for d in side} - set(out_dofs))
    assert np.allclose(a[:, out_dofs], b[:, out_dofs])
    # ... and side components of opposite sign: sin(phi) against -sin(phi)
    assert np.allclose(a[:, side_dofs], -b[:, side_dofs])
    assert np.abs(a[:, side_dofs]).max() > 0.1


def test_generator_is_deterministic_and_varied(tmp_path):
    cfg = synthetic_config({"variant": "static-cues", "num_classes": 3, "train_per_class": 10,
                            "test_per_class": 3, "seed": 5})  # fmt: skip
    generate(tmp_path / "a", cfg)
    generate(tmp_path / "b", cfg)
    generate(tmp_path / "c", dataclasses.replace(cfg, seed=6))
    a, b, c = (load_samples(tmp_path / x) for x in "abc")
    assert all(np.array_equal(x.joints, y.joints) for x, y in zip(a, b))
    assert not np.array_equal(a[0].joints, c[0].joints)
    lengths = [s.num_frames for s in a]
    assert min(lengths) >= cfg.min_frames and max(lengths) <= cfg.max_frames
    assert len(set(lengths)) > 10
    assert {s.joints.shape[0] for s in a} == {1, 2}
    assert all(s.joints.dtype == np.float32 and s.joints.shape[2:] == (25, 3) for s in a)
    train_subjects = {s.subject for s in a if s.split == "train"}
    test_subjects = {s.subject for s in a if s.split == "test"}
    assert train_subjects and test_subjects and not train_subjects & test_subjects
    m = read_manifest(tmp_path / "a")
    assert m.counts["train"]["per_class"] == [10, 10, 10] and m.layout.name == "ntu25"


def test_partner_second_person_performs_while_idle_one_sways(tmp_path):
    def second_person_motion(partner: bool) -> float:
        cfg = SyntheticConfig(num_classes=2, train_per_class=12, test_per_class=2,
                              second_person=1.0, partner=partner, seed=2)  # fmt: skip
        generate(tmp_path / str(partner), cfg)
        samples = load_samples(tmp_path / str(partner))
        assert all(s.joints.shape[0] == 2 for s in samples)
        # how far the second person's wrists travel (std over time; noise alone is 0.015 m)
        return float(np.mean([s.joints[1][:, [6, 10]].std(axis=0).mean() for s in samples]))

    assert second_person_motion(True) > 2 * second_person_motion(False)


def test_default_is_the_motion_variant_and_static_cues_restores_the_old_nuisances(tmp_path):
    """The embedded default holds no constant per-sequence nuisance that `center` leaves in:
    one body, one camera, no second person, one loop shape; every subject still splits."""
    assert synthetic_config() == SyntheticConfig()
    cfg = synthetic_config({"num_classes": 2, "train_per_class": 6, "test_per_class": 2})
    generate(tmp_path / "m", cfg)
    samples = load_samples(tmp_path / "m")
    assert {s.joints.shape[0] for s in samples} == {1}
    assert min(s.num_frames for s in samples) >= 64  # a clip at speed 2 fits
    # one body and one camera: the rest pose (first frame, before any motion) is the same
    # for every sample up to sway and sensor noise, wherever the sample stands
    first = np.stack([s.joints[0, 0] - s.joints[0, 0, 0] for s in samples])
    assert np.abs(first - first.mean(axis=0)).max() < 0.15
    static = synthetic_config({"variant": "static-cues", "second_person": 0.5})
    assert static.variant == "static-cues" and static.second_person == 0.5
    assert all(getattr(static, k) == v for k, v in VARIANTS["static-cues"].items()
               if k != "second_person")  # fmt: skip
    with pytest.raises(ConfigError, match="variant='nope'"):
        synthetic_config({"variant": "nope"})
    with pytest.raises(ConfigError, match="unknown config key"):
        synthetic_config({"variant": "static-cues", "colour": "red"})
