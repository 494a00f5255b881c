import numpy as np

from mcc.shards import load_samples, read_manifest
from mcc.synthetic import MOVES, SyntheticConfig, class_choreographies, generate


def test_default_classes_share_one_pose_set():
    table = class_choreographies(24)
    # 24 distinct cyclic orders of the same five moves (rotations are one class)
    assert all(sorted(order) == [0, 1, 2, 3, 4] for order in table)
    canonical = {order[order.index(0) :] + order[: order.index(0)] for order in table}
    assert len(canonical) == 24
    more = class_choreographies(60)
    assert len(set(more)) == 60 and more[:24] == table and len(MOVES) == 6


def test_generator_is_deterministic_and_varied(tmp_path):
    cfg = SyntheticConfig(num_classes=3, train_per_class=10, test_per_class=3, seed=5)
    generate(tmp_path / "a", cfg)
    generate(tmp_path / "b", cfg)
    generate(
        tmp_path / "c", SyntheticConfig(num_classes=3, train_per_class=10, test_per_class=3, seed=6)
    )
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
