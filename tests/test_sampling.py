"""Clip sampling (docs/design.md, "Sampling")."""

from __future__ import annotations

import numpy as np
import pytest

from mcc.config import ConfigError, LossConfig, SamplingConfig
from mcc.layouts import NTU25, OPENPOSE18, Layout
from mcc.sampling import (
    broken_clip,
    check_speed,
    clip_indices,
    effective_speed,
    eval_frames,
    interpolation_target,
    jitter,
    mcc_views,
    normalize,
    pad_bodies,
    random_rotation,
    rotate,
    speed_clip,
    stretch,
)

SPEEDS = (1, 2, 4, 8)


def index_seq(t: int, bodies: int = 2, joints: int = 3, channels: int = 3) -> np.ndarray:
    """(M, T, V, C) float32 whose every value in frame t is t."""
    seq = np.zeros((bodies, t, joints, channels), dtype=np.float32)
    seq[:] = np.arange(t, dtype=np.float32)[None, :, None, None]
    return seq


def frame_ids(frames: np.ndarray) -> np.ndarray:
    """The frame indices encoded by index_seq, checking every value of a frame agrees."""
    ids = frames[0, :, 0, 0]
    assert (frames == ids[None, :, None, None]).all()
    return ids.astype(int)


# --- clip indices and speeds -------------------------------------------------------------


def test_clip_indices_design_example():
    idx = clip_indices(200, 10, 2)
    assert len(idx) == 32
    assert idx.tolist() == list(range(10, 73, 2))
    assert idx[0] == 10 and idx[-1] == 72


def test_clip_indices_default_len_and_speed_one():
    assert clip_indices(100, 5, 1).tolist() == list(range(5, 37))
    assert clip_indices(100, 0, 3, clip_len=4).tolist() == [0, 3, 6, 9]


def test_clip_indices_loop_over():
    idx = clip_indices(51, 7, 8)
    assert idx.tolist() == [(7 + 8 * t) % 51 for t in range(32)]
    assert idx.max() < 51 and idx.min() >= 0
    # 51 frames at r=8 visit 32 distinct frames out of order (51 and 8 are coprime)
    assert len(set(idx.tolist())) == 32
    assert not (np.diff(idx) > 0).all()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, False])
def test_bad_speeds_raise(bad):
    with pytest.raises(ValueError, match="speed"):
        clip_indices(100, 0, bad)
    with pytest.raises(ValueError, match="speed"):
        speed_clip(index_seq(100), bad, np.random.default_rng(0))
    with pytest.raises(ValueError):
        check_speed(bad)


def test_integral_float_and_numpy_speeds_accepted():
    assert check_speed(2.0) == 2 and isinstance(check_speed(2.0), int)
    assert check_speed(np.int64(4)) == 4


def test_clip_indices_needs_a_frame():
    with pytest.raises(ValueError):
        clip_indices(0, 0, 1)


def test_speed_clip_loop_keeps_speed_and_wraps():
    seq = index_seq(51)
    for seed in range(20):
        clip = speed_clip(seq, 8, np.random.default_rng(seed), overflow="loop")
        assert clip.speed == 8
        assert clip.wrapped is True
        assert 0 <= clip.start < 51
        assert clip.frames.shape == (2, 32, 3, 3)
        assert frame_ids(clip.frames).tolist() == [(clip.start + 8 * t) % 51 for t in range(32)]


def test_speed_clip_fitting_never_wraps():
    seq = index_seq(100)
    for seed in range(50):
        clip = speed_clip(seq, 2, np.random.default_rng(seed))
        assert clip.wrapped is False
        assert clip.start + 64 <= 100
        assert frame_ids(clip.frames).tolist() == list(range(clip.start, clip.start + 64, 2))


def test_speed_clip_exact_fit_starts_at_zero():
    seq = index_seq(64)
    for seed in range(5):
        clip = speed_clip(seq, 2, np.random.default_rng(seed))
        assert clip.start == 0 and not clip.wrapped


@pytest.mark.parametrize(
    "t, r, speeds, expected",
    [
        (130, 8, SPEEDS, 4),
        (51, 8, SPEEDS, 1),
        (20, 8, SPEEDS, 1),
        (20, 8, (2, 4, 8), 2),  # none fits: the smallest candidate
        (256, 8, SPEEDS, 8),
        (255, 8, SPEEDS, 4),
        (128, 4, SPEEDS, 4),
        (130, 2, SPEEDS, 2),
        (100, 8, (1, 3, 8), 3),  # the largest candidate <= r that fits
    ],
)
def test_effective_speed_cap(t, r, speeds, expected):
    assert effective_speed(t, r, speeds, 32, "cap") == expected


def test_effective_speed_loop_keeps_speed():
    assert effective_speed(51, 8, SPEEDS, 32, "loop") == 8
    assert effective_speed(20, 4, SPEEDS, 32, "loop") == 4


def test_effective_speed_bad_overflow():
    with pytest.raises(ValueError, match="overflow"):
        effective_speed(51, 8, SPEEDS, 32, "wrap")


def test_capped_clip_stays_in_range_with_its_target():
    t = 130
    seq = index_seq(t)
    for seed in range(100):
        clip = speed_clip(seq, 8, np.random.default_rng(seed), overflow="cap", speeds=SPEEDS)
        assert clip.speed == 4
        assert not clip.wrapped
        assert clip.start + 32 * clip.speed <= t
        ids = frame_ids(clip.frames)
        assert (np.diff(ids) == 4).all()
        target = frame_ids(interpolation_target(seq, clip.start, clip.speed, 2))
        assert (np.diff(target) >= 0).all()  # never looped
        assert target.max() < t


def test_capped_clip_that_cannot_fit_loops():
    seq = index_seq(20)
    clip = speed_clip(seq, 8, np.random.default_rng(0), overflow="cap", speeds=SPEEDS)
    assert clip.speed == 1
    assert clip.wrapped


# --- seeds ---------------------------------------------------------------------------------


def test_same_seed_same_clips():
    rng = np.random.default_rng(123)
    seq = rng.normal(size=(2, 150, 5, 3)).astype(np.float32)
    a = speed_clip(seq, 2, np.random.default_rng(7))
    b = speed_clip(seq, 2, np.random.default_rng(7))
    assert a.start == b.start and np.array_equal(a.frames, b.frames)
    va = mcc_views(seq, np.random.default_rng(7), SamplingConfig(), LossConfig(), (0, 1, 2))
    vb = mcc_views(seq, np.random.default_rng(7), SamplingConfig(), LossConfig(), (0, 1, 2))
    assert va.keys() == vb.keys()
    for k in va:
        assert np.array_equal(va[k], vb[k]), k


def test_different_seed_different_clips():
    rng = np.random.default_rng(123)
    seq = rng.normal(size=(2, 300, 5, 3)).astype(np.float32)
    starts = {speed_clip(seq, 2, np.random.default_rng(s)).start for s in range(10)}
    assert len(starts) > 1
    va = mcc_views(seq, np.random.default_rng(1), SamplingConfig(), LossConfig(), (0, 1, 2))
    vb = mcc_views(seq, np.random.default_rng(2), SamplingConfig(), LossConfig(), (0, 1, 2))
    assert not np.array_equal(va["anchor"], vb["anchor"])
    assert not np.array_equal(va["negative"], vb["negative"])


# --- the broken clip --------------------------------------------------------------------------


@pytest.mark.parametrize("t, r", [(300, 4), (51, 8), (100, 1)])
def test_broken_clip_is_a_permutation_of_the_speed_clip(t, r):
    seq = index_seq(t)
    s = speed_clip(seq, r, np.random.default_rng(5))
    b = broken_clip(seq, r, np.random.default_rng(5))
    assert b.start == s.start and b.speed == s.speed and b.wrapped == s.wrapped
    assert b.frames.shape == s.frames.shape
    s_ids, b_ids = frame_ids(s.frames), frame_ids(b.frames)
    assert sorted(b_ids.tolist()) == sorted(s_ids.tolist())
    assert not np.array_equal(b_ids, s_ids)  # the order changed


def test_broken_clip_permutes_whole_frames():
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(2, 200, 4, 3)).astype(np.float32)
    s = speed_clip(seq, 2, np.random.default_rng(9))
    b = broken_clip(seq, 2, np.random.default_rng(9))
    s_rows = {s.frames[:, t].tobytes() for t in range(32)}
    b_rows = {b.frames[:, t].tobytes() for t in range(32)}
    assert s_rows == b_rows


# --- interpolation target ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [1, 2, 4])
@pytest.mark.parametrize("speed", [1, 2, 4, 8])
@pytest.mark.parametrize("t, start", [(400, 13), (100, 90)])
def test_interpolation_target_rule(rate, speed, t, start):
    seq = index_seq(t)
    target = interpolation_target(seq, start, speed, rate)
    assert target.shape == (2, 32 * rate, 3, 3)
    expected = [(start + (i * speed) // rate) % t for i in range(32 * rate)]
    assert frame_ids(target).tolist() == expected
    # every l-th target frame is the clip's frame
    clip = frame_ids(seq[:, clip_indices(t, start, speed)])
    assert np.array_equal(frame_ids(target)[::rate], clip)
    if speed % rate == 0:
        exact = clip_indices(t, start, speed // rate, 32 * rate)
        assert np.array_equal(target, seq[:, exact])


def test_interpolation_target_hold_repeats_frames():
    seq = index_seq(100)
    target = frame_ids(interpolation_target(seq, 3, 1, 4))
    assert target[:9].tolist() == [3, 3, 3, 3, 4, 4, 4, 4, 5]


@pytest.mark.parametrize("speed, rate", [(1, 2), (1, 4), (2, 4)])
def test_interpolation_target_tile(speed, rate):
    seq = index_seq(300)
    target = interpolation_target(seq, 20, speed, rate, slow_rule="tile")
    clip = seq[:, clip_indices(300, 20, speed)]
    assert target.shape == (2, 32 * rate, 3, 3)
    assert np.array_equal(target, np.concatenate([clip] * rate, axis=1))


def test_interpolation_target_tile_only_for_slow_speeds():
    seq = index_seq(300)
    hold = interpolation_target(seq, 20, 4, 2, slow_rule="hold")
    tile = interpolation_target(seq, 20, 4, 2, slow_rule="tile")
    assert np.array_equal(hold, tile)


def test_interpolation_target_exact_refuses():
    seq = index_seq(200)
    with pytest.raises(ValueError) as e:
        interpolation_target(seq, 0, 1, 2, slow_rule="exact")
    assert "l=2" in str(e.value) and "r=1" in str(e.value)
    out = interpolation_target(seq, 0, 4, 2, slow_rule="exact")
    assert frame_ids(out).tolist() == list(range(0, 128, 2))


def test_interpolation_target_bad_rate_and_speed():
    seq = index_seq(100)
    with pytest.raises(ValueError):
        interpolation_target(seq, 0, 2, 0)
    with pytest.raises(ValueError):
        interpolation_target(seq, 0, 0, 2)


# --- mcc_views --------------------------------------------------------------------------------


def test_mcc_views_keys_and_shapes():
    seq = index_seq(300, bodies=2, joints=5, channels=3)
    v = mcc_views(seq, np.random.default_rng(0), SamplingConfig(), LossConfig(), (0, 1, 2))
    assert set(v) == {
        "anchor",
        "positive",
        "negative",
        "anchor_target",
        "positive_target",
        "wrapped",
    }
    for k in ("anchor", "positive", "negative"):
        assert v[k].shape == (2, 32, 5, 3), k
        assert v[k].dtype == np.float32
    for k in ("anchor_target", "positive_target"):
        assert v[k].shape == (2, 64, 5, 3), k
    assert int(v["wrapped"]) == 0  # 300 >= 32 * 8


def test_mcc_views_without_interp_or_positive():
    seq = index_seq(300)
    v = mcc_views(seq, np.random.default_rng(0), SamplingConfig(), LossConfig(interp=0), (0, 1, 2))
    assert set(v) == {"anchor", "positive", "negative", "wrapped"}
    v = mcc_views(
        seq, np.random.default_rng(0), SamplingConfig(positive="none"), LossConfig(), (0, 1, 2)
    )
    assert set(v) == {"anchor", "negative", "anchor_target", "wrapped"}


def test_mcc_views_reconstruct_target_is_the_clip():
    seq = index_seq(300)
    v = mcc_views(
        seq,
        np.random.default_rng(3),
        SamplingConfig(),
        LossConfig(interp_target="reconstruct"),
        (0, 1, 2),
    )
    assert v["anchor_target"].shape == (2, 32, 3, 3)
    assert np.array_equal(v["anchor_target"], v["anchor"])
    assert np.array_equal(v["positive_target"], v["positive"])


def test_mcc_views_speeds_over_many_draws():
    t = 400  # > 32 * 8: nothing wraps, speeds can be read off the frame indices
    seq = index_seq(t)
    rng = np.random.default_rng(0)
    anchor_speeds, pairs = [], set()
    for _ in range(200):
        v = mcc_views(seq, rng, SamplingConfig(), LossConfig(), (0, 1, 2))
        a, p = frame_ids(v["anchor"]), frame_ids(v["positive"])
        ra, rp = set(np.diff(a).tolist()), set(np.diff(p).tolist())
        assert len(ra) == 1 and len(rp) == 1
        ra, rp = ra.pop(), rp.pop()
        assert ra in SPEEDS and rp in SPEEDS
        assert ra != rp
        # negative: its own clip at the anchor's speed, frames permuted
        n = np.sort(frame_ids(v["negative"]))
        assert set(np.diff(n).tolist()) == {ra}
        # targets: every 2nd frame is the clip
        assert np.array_equal(frame_ids(v["anchor_target"])[::2], a)
        assert np.array_equal(frame_ids(v["positive_target"])[::2], p)
        assert int(v["wrapped"]) == 0
        anchor_speeds.append(ra)
        pairs.add((ra, rp))
    assert set(anchor_speeds) == set(SPEEDS)
    assert len(pairs) == 12  # every ordered pair of distinct speeds occurs


def test_mcc_views_counts_wrapped_clips():
    seq = index_seq(51)
    v = mcc_views(
        seq, np.random.default_rng(0), SamplingConfig(speeds=(8, 16)), LossConfig(), (0, 1, 2)
    )
    assert int(v["wrapped"]) == 2
    v = mcc_views(
        seq,
        np.random.default_rng(0),
        SamplingConfig(speeds=(8, 16), overflow="cap"),
        LossConfig(),
        (0, 1, 2),
    )
    # nothing fits 51 frames: capped to the smallest speed, which still loops
    assert int(v["wrapped"]) == 2


def test_mcc_views_bad_negative():
    seq = index_seq(300)
    with pytest.raises(ConfigError):
        mcc_views(
            seq, np.random.default_rng(0), SamplingConfig(negative="x"), LossConfig(), (0, 1, 2)
        )


# --- jitter, view transform -------------------------------------------------------------------


def test_jitter_touches_only_coordinates_of_present_bodies():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(2, 32, 18, 3)).astype(np.float32)
    frames[1] = 0.0  # absent second body
    coords = OPENPOSE18.coord_channels
    assert coords == (0, 1)
    out = jitter(frames, 0.05, np.random.default_rng(1), coords)
    assert out.shape == frames.shape and out.dtype == frames.dtype
    assert np.array_equal(out[..., 2], frames[..., 2])  # score channel untouched
    assert np.array_equal(out[1], frames[1])  # absent body stays zero
    noise = out[0, ..., :2] - frames[0, ..., :2]
    assert (noise != 0).all()
    assert abs(noise.std() - 0.05) < 0.005
    assert abs(noise.mean()) < 0.005


def test_mcc_views_jitter_negative_keeps_score():
    seq = index_seq(300, joints=18)
    seq[..., 2] = 0.7
    v = mcc_views(
        seq,
        np.random.default_rng(0),
        SamplingConfig(negative="jitter", jitter_sigma=0.1),
        LossConfig(),
        (0, 1),
    )
    neg = v["negative"]
    assert (neg[..., 2] == np.float32(0.7)).all()
    # coordinates are index + noise: the speed is still readable after rounding
    ids = np.round(neg[0, :, 0, 0]).astype(int)
    noise = neg[..., :2] - ids[None, :, None, None]
    assert 0.05 < noise.std() < 0.15


def test_mcc_views_shear_each_clip_and_its_target_alike():
    seq = np.random.default_rng(3).normal(size=(1, 300, 25, 3)).astype(np.float32)
    plain = mcc_views(seq, np.random.default_rng(0), SamplingConfig(), LossConfig(), (0, 1, 2))
    cfg = SamplingConfig(shear=0.5)
    sheared = mcc_views(seq, np.random.default_rng(0), cfg, LossConfig(), (0, 1, 2))
    maps = {}
    for name in ("anchor", "positive", "negative"):
        x, y = plain[name].reshape(-1, 3), sheared[name].reshape(-1, 3)
        m = np.linalg.lstsq(x, y, rcond=None)[0].T  # y = x @ m.T: the clip's linear map
        np.testing.assert_allclose(x @ m.T, y, atol=1e-4)
        np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-4)
        assert (np.abs(m - np.diag(np.diag(m))) <= 0.5 + 1e-4).all()
        assert not np.allclose(m, np.eye(3), atol=1e-2)
        maps[name] = m
        if name != "negative":  # the interpolation target goes through the same map
            t = plain[f"{name}_target"].reshape(-1, 3) @ m.T
            np.testing.assert_allclose(t, sheared[f"{name}_target"].reshape(-1, 3), atol=1e-4)
    assert not np.allclose(maps["anchor"], maps["positive"], atol=1e-2)
    assert not np.allclose(maps["anchor"], maps["negative"], atol=1e-2)


def test_random_rotation_is_a_rotation():
    for dims in (2, 3):
        for seed in range(5):
            rot = random_rotation(np.random.default_rng(seed), dims, 60.0)
            assert rot.shape == (dims, dims)
            np.testing.assert_allclose(rot @ rot.T, np.eye(dims), atol=1e-12)
            assert np.linalg.det(rot) == pytest.approx(1.0)
    assert np.allclose(random_rotation(np.random.default_rng(0), 3, 0.0), np.eye(3))


def _pairwise(frames: np.ndarray, coords) -> np.ndarray:
    x = frames[..., list(coords)]  # (M, T, V, c)
    return np.linalg.norm(x[:, :, :, None] - x[:, :, None, :], axis=-1)


def test_view_transform_preserves_joint_distances():
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(1, 1, 6, 3)).astype(np.float32)
    seq = np.repeat(pose, 300, axis=1)  # a static pose: every clip frame is the pose
    v = mcc_views(
        seq,
        np.random.default_rng(1),
        SamplingConfig(negative="view", view_max_degrees=60.0),
        LossConfig(),
        (0, 1, 2),
    )
    neg = v["negative"]
    assert not np.allclose(neg, v["anchor"], atol=1e-3)  # actually rotated
    np.testing.assert_allclose(
        _pairwise(neg, (0, 1, 2)), _pairwise(v["anchor"], (0, 1, 2)), atol=1e-5
    )
    np.testing.assert_allclose(
        np.linalg.norm(neg, axis=-1), np.linalg.norm(seq[:, :32], axis=-1), atol=1e-5
    )


def test_rotate_2d_leaves_score_alone():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(2, 8, 18, 3)).astype(np.float32)
    rot = random_rotation(np.random.default_rng(4), 2, 60.0)
    out = rotate(frames, rot, (0, 1))
    assert out.dtype == np.float32
    assert np.array_equal(out[..., 2], frames[..., 2])
    np.testing.assert_allclose(out[..., :2], frames[..., :2] @ rot.T, atol=1e-6)
    np.testing.assert_allclose(_pairwise(out, (0, 1)), _pairwise(frames, (0, 1)), atol=1e-5)


# --- eval_frames ------------------------------------------------------------------------------


@pytest.mark.parametrize("t, frames", [(200, 64), (51, 64), (64, 64), (10, 4)])
def test_eval_frames_deterministic(t, frames):
    seq = index_seq(t)
    out = eval_frames(seq, frames)
    again = eval_frames(seq, frames)
    assert np.array_equal(out, again)
    assert out.shape == (2, frames, 3, 3)
    ids = frame_ids(out)
    expected = [min(int((i + 0.5) * t / frames), t - 1) for i in range(frames)]
    assert ids.tolist() == expected
    assert (np.diff(ids) >= 0).all()
    # spans the sequence: first frame in the first bin, last in the last bin
    assert ids[0] < max(1, t / frames)
    assert ids[-1] >= t - max(1, t / frames)
    if t >= frames:
        assert len(set(ids.tolist())) == frames


def test_eval_frames_identity_when_lengths_match():
    seq = index_seq(64)
    assert np.array_equal(eval_frames(seq, 64), seq)


@pytest.mark.parametrize("crop_min", [0.5, 0.9])
def test_eval_frames_random_crop(crop_min):
    t, frames = 200, 64
    seq = index_seq(t)
    spans = []
    for seed in range(50):
        ids = frame_ids(eval_frames(seq, frames, np.random.default_rng(seed), crop_min))
        assert len(ids) == frames
        assert (np.diff(ids) >= 0).all()
        # a resized crop: replay the documented draw (crop length, then its start)
        rng = np.random.default_rng(seed)
        length = max(1, int(round(t * rng.uniform(crop_min, 1.0))))
        lo = int(rng.integers(0, t - length + 1))
        assert length >= crop_min * t - 1
        assert ids.min() >= lo and ids.max() <= lo + length - 1
        expected = [lo + min(int((i + 0.5) * length / frames), length - 1) for i in range(frames)]
        assert ids.tolist() == expected
        spans.append(ids.max() - ids.min() + 1)
    assert min(spans) >= crop_min * t - t / frames - 1
    assert len(set(spans)) > 1  # crops vary


# --- normalisation ----------------------------------------------------------------------------


def test_normalize_center():
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(2, 10, 25, 3)).astype(np.float32) + 5.0
    seq[1, 4:] = 0.0  # body 1 leaves after frame 3
    out = normalize(seq, NTU25, "center")
    assert out.dtype == np.float32 and out.shape == seq.shape
    np.testing.assert_allclose(out[0, :, NTU25.center], 0.0, atol=1e-6)
    assert (out[1, 4:] == 0).all()
    # body 1 shifted by body 0's centre, frame by frame
    np.testing.assert_allclose(out[1, :4], seq[1, :4] - seq[0, :4, 20:21], atol=1e-6)
    assert normalize(seq, NTU25, "none") is seq


def test_normalize_center_each_puts_every_body_on_its_own_centre():
    rng = np.random.default_rng(1)
    seq = rng.normal(size=(2, 10, 25, 3)).astype(np.float32) + 5.0
    seq[1, 6:] = 0.0  # body 1 leaves after frame 5
    out = normalize(seq, NTU25, "center-each")
    np.testing.assert_allclose(out[0, :, NTU25.center], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[1, :6, NTU25.center], 0.0, atol=1e-6)
    assert (out[1, 6:] == 0).all()
    np.testing.assert_allclose(out[1, :6], seq[1, :6] - seq[1, :6, 20:21], atol=1e-6)


def test_normalize_center_2d_keeps_score():
    rng = np.random.default_rng(0)
    seq = rng.uniform(0.1, 1.0, size=(1, 5, 18, 3)).astype(np.float32)
    out = normalize(seq, OPENPOSE18, "center")
    assert np.array_equal(out[..., 2], seq[..., 2])
    np.testing.assert_allclose(out[0, :, 1, :2], 0.0, atol=1e-7)


def test_normalize_bad_mode():
    seq = np.ones((1, 4, 25, 3), dtype=np.float32)
    with pytest.raises(ConfigError):
        normalize(seq, NTU25, "bogus")
    with pytest.raises(ConfigError, match="center-align"):
        normalize(np.ones((1, 4, 18, 3), dtype=np.float32), OPENPOSE18, "center-align")


def _upright_pose(rng: np.random.Generator) -> np.ndarray:
    """A (25, 3) NTU pose with spine base at the origin, spine mid on +z and the shoulders
    on the x axis (so the aligned pose is the pose itself, up to centring)."""
    pose = rng.normal(scale=0.3, size=(25, 3))
    pose[0] = [0.0, 0.0, 0.0]
    pose[1] = [0.0, 0.0, 0.4]
    pose[20] = [0.0, 0.0, 0.6]
    pose[4] = [-0.2, 0.0, 0.55]  # left shoulder
    pose[8] = [0.2, 0.0, 0.55]  # right shoulder
    return pose


def _rigid(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q, rng.normal(size=3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normalize_center_align_undoes_a_rigid_motion(seed):
    rng = np.random.default_rng(seed)
    assert NTU25.align == (0, 1, 4, 8)
    poses = np.stack([_upright_pose(rng) for _ in range(6)])  # (T, V, 3)
    rot, shift = _rigid(rng)
    seq = np.zeros((2, 6, 25, 3), dtype=np.float32)
    seq[0] = poses @ rot.T + shift
    out = normalize(seq, NTU25, "center-align")
    first = out[0, 0]
    spine = first[1] - first[0]
    shoulders = first[8] - first[4]
    np.testing.assert_allclose(spine[:2], 0.0, atol=1e-5)
    assert spine[2] > 0
    np.testing.assert_allclose(shoulders[1:], 0.0, atol=1e-5)
    assert shoulders[0] > 0
    # the whole sequence is the upright pose, centred on the centre joint of each frame
    expected = poses - poses[:, 20:21]
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    assert (out[1] == 0).all()  # the absent body stays zero


def test_normalize_center_align_oblique_shoulders():
    rng = np.random.default_rng(5)
    pose = _upright_pose(rng)
    pose[8] = [0.2, 0.0, 0.75]  # shoulders not orthogonal to the spine
    rot, shift = _rigid(rng)
    seq = (pose @ rot.T + shift)[None, None].astype(np.float32)
    first = normalize(seq, NTU25, "center-align")[0, 0]
    spine, shoulders = first[1] - first[0], first[8] - first[4]
    np.testing.assert_allclose(spine[:2], 0.0, atol=1e-5)
    assert abs(shoulders[1]) < 1e-5 and shoulders[0] > 0
    assert shoulders[2] == pytest.approx(0.2, abs=1e-5)


# --- pad_bodies -------------------------------------------------------------------------------


def test_pad_bodies():
    x = np.ones((1, 4, 3, 2), dtype=np.float32)
    out = pad_bodies(x, 2)
    assert out.shape == (2, 4, 3, 2) and out.dtype == np.float32
    assert (out[0] == 1).all() and (out[1] == 0).all()
    assert pad_bodies(x, 1) is x
    three = np.arange(3 * 2, dtype=np.float32).reshape(3, 1, 1, 2)
    assert np.array_equal(pad_bodies(three, 2), three[:2])


def test_layout_custom_three_channel():
    lay = Layout("tri", 3, ((0, 1), (1, 2)), 0, channels=("x", "y", "score"))
    assert lay.coord_channels == (0, 1)


def test_center_align_with_a_degenerate_first_frame_keeps_the_sequence_3d():
    seq = np.random.default_rng(0).normal(size=(1, 3, 25, 3)).astype(np.float32)
    seq[0, 0, 1] = seq[0, 0, 0]  # spine base and spine mid coincide: no "up" direction
    out = normalize(seq, NTU25, "center-align")
    assert np.linalg.matrix_rank(out[0].reshape(-1, 3)) == 3


# --- stretching short sequences (sampling.min_frames) ----------------------------------------


def test_stretch_interpolates_a_short_sequence_to_min_frames():
    seq = index_seq(10) + 1  # frame t holds t + 1: no frame is all zeros (absent)
    out = stretch(seq, 64)
    assert out.shape == (2, 64, 3, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], np.linspace(1, 10, 64), rtol=1e-6)
    assert (out == out[:, :, :1, :1]).all()  # a frame's values move together


def test_stretch_leaves_long_sequences_and_min_frames_0_alone():
    seq = index_seq(64) + 1
    assert stretch(seq, 64) is seq
    assert stretch(index_seq(5), 0).shape[1] == 5


def test_stretch_never_blends_an_absent_body_into_a_present_one():
    seq = index_seq(10) + 1
    seq[1, 4:] = 0  # the second body is gone after frame 3
    pos = np.linspace(0, 9, 64)
    out = stretch(seq, 64)
    np.testing.assert_allclose(out[0, :, 0, 0], pos + 1, rtol=1e-6)
    expected = np.where(pos < 3.5, np.minimum(pos, 3) + 1, 0)  # the nearer frame past 3
    np.testing.assert_allclose(out[1, :, 0, 0], expected, rtol=1e-6)
