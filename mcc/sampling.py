"""Clip sampling of Sec. 3.1 and 3.2: S(r, c), B(r, c) and the interpolation target, and the
views of Table 4's comparison pretexts (clip order, space-time jigsaw, pace), cut from the
same S(r, c).

Pure NumPy, seeded by the `np.random.Generator` passed in. A sequence is float32
(M, T, V, C): bodies, frames, joints, channels; a clip has the same order with T = clip_len.
The rules, and where they depart from the paper's text, are stated in docs/design.md
("Sampling").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mcc.config import ConfigError, LossConfig, SamplingConfig
from mcc.graph import hop_distance
from mcc.layouts import Layout


@dataclass
class Clip:
    """frames: (M, clip_len, V, C); start s and effective speed r of the indices s + r*t."""

    frames: np.ndarray
    start: int
    speed: int
    wrapped: bool  # some index went past the end and looped over


def check_speed(speed) -> int:
    if isinstance(speed, bool) or int(speed) != speed or speed < 1:
        raise ValueError(f"speed {speed!r} is not allowed: speeds are positive integers")
    return int(speed)


def effective_speed(
    num_frames: int, speed: int, speeds: tuple[int, ...], clip_len: int, overflow: str
) -> int:
    """The speed actually used. `loop` keeps r (the paper's rule: indices wrap around).
    `cap` lowers r to the largest candidate speed <= r with clip_len * r <= T, or to the
    smallest candidate when none fits (then even that clip loops)."""
    speed = check_speed(speed)
    if overflow not in ("loop", "cap"):
        raise ValueError(f"overflow {overflow!r} is not allowed; choose loop or cap")
    if overflow == "loop" or clip_len * speed <= num_frames:
        return speed
    fitting = [s for s in speeds if s <= speed and clip_len * s <= num_frames]
    return max(fitting) if fitting else min(speeds)


def draw_start(num_frames: int, speed: int, clip_len: int, rng: np.random.Generator) -> int:
    """Uniform start. When the clip fits (clip_len * r <= T) the start keeps every index,
    and the interpolation target's frames up to s + clip_len*r - 1, inside the sequence;
    otherwise any frame may start it and the clip loops over from the start."""
    if clip_len * speed <= num_frames:
        return int(rng.integers(0, num_frames - clip_len * speed + 1))
    return int(rng.integers(0, num_frames))


def clip_indices(num_frames: int, start: int, speed: int, clip_len: int = 32) -> np.ndarray:
    """Frame indices (s + r*t) mod T, t = 0..clip_len-1 (Sec. 3.1; docs/design.md takes 32 frames:
    r = 2 from frame 10 gives 10, 12, ..., 72)."""
    if num_frames < 1:
        raise ValueError("a sequence needs at least one frame")
    return (start + check_speed(speed) * np.arange(clip_len)) % num_frames


def speed_clip(
    seq: np.ndarray,
    speed: int,
    rng: np.random.Generator,
    clip_len: int = 32,
    overflow: str = "loop",
    speeds: tuple[int, ...] = (1, 2, 4, 8),
) -> Clip:
    """S(r, c): clip_len frames at playback speed r from a random start."""
    _check_sequence(seq)
    t = seq.shape[1]
    r = effective_speed(t, speed, speeds, clip_len, overflow)
    s = draw_start(t, r, clip_len, rng)
    idx = clip_indices(t, s, r, clip_len)
    return Clip(seq[:, idx], s, r, wrapped=bool(s + r * (clip_len - 1) >= t))


def broken_clip(
    seq: np.ndarray,
    speed: int,
    rng: np.random.Generator,
    clip_len: int = 32,
    overflow: str = "loop",
    speeds: tuple[int, ...] = (1, 2, 4, 8),
) -> Clip:
    """B(r, c): its own clip at speed r, frames randomly permuted (motion broken)."""
    clip = speed_clip(seq, speed, rng, clip_len, overflow, speeds)
    clip.frames = clip.frames[:, rng.permutation(clip_len)]
    return clip


def jitter(frames: np.ndarray, sigma: float, rng: np.random.Generator, coords) -> np.ndarray:
    """Table 2 "M-jittered": Gaussian noise on coordinate channels of present bodies."""
    out = frames.copy()
    present = np.abs(frames).sum(axis=(1, 2, 3)) > 0
    noise = rng.normal(0.0, sigma, size=frames[..., list(coords)].shape).astype(frames.dtype)
    out[..., list(coords)] += noise * present[:, None, None, None]
    return out


def random_rotation(rng: np.random.Generator, dims: int, max_degrees: float) -> np.ndarray:
    """A rotation matrix with angles uniform in [-max, max] about each axis (one in 2D)."""
    a = np.deg2rad(rng.uniform(-max_degrees, max_degrees, size=3))
    if dims == 2:
        c, s = np.cos(a[0]), np.sin(a[0])
        return np.array([[c, -s], [s, c]])
    (cx, cy, cz), (sx, sy, sz) = np.cos(a), np.sin(a)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_shear(rng: np.random.Generator, dims: int, amount: float) -> np.ndarray:
    """A shear matrix: the identity plus off-diagonal entries uniform in [-amount, amount]."""
    off = 1 - np.eye(dims)
    return np.eye(dims) + rng.uniform(-amount, amount, size=(dims, dims)) * off


def rotate(frames: np.ndarray, rot: np.ndarray, coords) -> np.ndarray:
    """Apply a rotation (or any linear map) to the coordinate channels (the rest are left
    alone)."""
    out = frames.copy()
    c = list(coords)
    out[..., c] = (frames[..., c] @ rot.T).astype(frames.dtype)
    return out


def interpolation_target(
    seq: np.ndarray,
    start: int,
    speed: int,
    rate: int,
    clip_len: int = 32,
    slow_rule: str = "hold",
) -> np.ndarray:
    """The ground truth of Eq. 3: clip_len * l frames at speed r / l from the raw sequence.

    Frame t = 0 .. clip_len*l - 1 is x[(s + floor(t * r / l)) mod T] with the clip's own s, r:
    exact sampling at r / l when l divides r, held frames otherwise (`hold`). `tile` is the
    paper's literal rule for r < l (repeat the clip l times); `exact` refuses r that l does
    not divide.
    """
    speed = check_speed(speed)
    if slow_rule not in ("hold", "tile", "exact"):
        raise ValueError(f"slow_rule {slow_rule!r} is not allowed; choose hold, tile or exact")
    if rate < 1:
        raise ValueError(f"interpolation rate {rate} is not allowed: a positive integer")
    t = seq.shape[1]
    if speed % rate and slow_rule == "exact":
        raise ValueError(
            f"interpolation rate l={rate} does not divide speed r={speed}; "
            f"slow_rule=exact needs l | r (use hold or tile)"
        )
    if slow_rule == "tile" and speed < rate:
        clip = seq[:, clip_indices(t, start, speed, clip_len)]
        return np.concatenate([clip] * rate, axis=1)
    idx = (start + (np.arange(clip_len * rate) * speed) // rate) % t
    return seq[:, idx]


def _check_sequence(seq: np.ndarray) -> None:
    if seq.ndim != 4 or seq.shape[1] < 1:
        raise ValueError(
            f"a sequence is (bodies, frames, joints, channels) with >= 1 frame; got {seq.shape}"
        )


def mcc_views(
    seq: np.ndarray,
    rng: np.random.Generator,
    sampling: SamplingConfig,
    loss: LossConfig,
    coords,
) -> dict[str, np.ndarray]:
    """The triplet of Sec. 3.1 and the targets of Sec. 3.2 for one sequence.

    Speeds: anchor r_i uniform, positive r_j uniform among the others, negative r_k = r_i;
    each clip has its own random start. Returns (M, T', V, C) arrays under the keys
    anchor, positive (absent when sampling.positive=none), negative, and anchor_target /
    positive_target (clip_len * l frames, or the clip itself for interp_target=reconstruct).
    Also returns `wrapped`: how many of the anchor/positive clips looped. With
    sampling.shear > 0 (not in the paper) each clip is sheared by its own random matrix, and
    its target by the same one.
    """
    speeds = tuple(sampling.speeds)
    args = dict(clip_len=sampling.clip_len, overflow=sampling.overflow, speeds=speeds)
    r_i = int(rng.choice(speeds))
    anchor = speed_clip(seq, r_i, rng, **args)
    clips = {"anchor": anchor}
    if sampling.positive == "speed":
        r_j = int(rng.choice([s for s in speeds if s != r_i]))
        clips["positive"] = speed_clip(seq, r_j, rng, **args)
    if sampling.negative == "shuffle":
        neg = broken_clip(seq, r_i, rng, **args).frames
    elif sampling.negative == "jitter":
        neg = jitter(speed_clip(seq, r_i, rng, **args).frames, sampling.jitter_sigma, rng, coords)
    elif sampling.negative == "view":
        dims = len(coords)
        rot = random_rotation(rng, dims, sampling.view_max_degrees)
        neg = rotate(speed_clip(seq, r_i, rng, **args).frames, rot, coords)
    else:
        raise ConfigError(f"sampling.negative={sampling.negative!r} is not allowed")
    out = {name: c.frames for name, c in clips.items()}
    out["negative"] = neg
    if loss.interp > 0:
        for name, c in clips.items():
            if loss.interp_target == "reconstruct":
                out[f"{name}_target"] = c.frames
            else:
                out[f"{name}_target"] = interpolation_target(
                    seq, c.start, c.speed, loss.interp_rate, sampling.clip_len, loss.slow_rule
                )
    if sampling.shear > 0:  # beyond the paper; drawn last, so shear 0 leaves the rest alone
        for name in ("anchor", "positive", "negative"):
            if name in out:
                m = random_shear(rng, len(coords), sampling.shear)
                out[name] = rotate(out[name], m, coords)
                if f"{name}_target" in out:  # the decoder rebuilds the clip it saw
                    out[f"{name}_target"] = rotate(out[f"{name}_target"], m, coords)
    out["wrapped"] = np.int64(sum(c.wrapped for c in clips.values()))
    return out


# Comparison pretexts (Table 4). Each view is one clip S(r, c) with r uniform among
# sampling.speeds (the MCC anchor's distribution; effective speed and overflow as for MCC),
# rearranged, and the index of the arrangement as its class label.

CLIP_ORDERS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(3)))  # 6
JIGSAW_ORDERS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(4)))  # 24

# Jigsaw body regions of the built-in layouts, as two joint lists of equal length: joint
# upper[i] and lower[i] trade places when their pieces do. Joints in neither list stay put.
# ntu25 (0-based): shoulder/elbow/wrist/hand <-> hip/knee/ankle/foot on each side, neck <->
# spine mid, head <-> spine base; the spine shoulder (centre) and hand tips/thumbs stay.
# openpose18: shoulder/elbow/wrist <-> hip/knee/ankle on each side; nose, neck, eyes and
# ears stay.
BODY_REGIONS: dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...]]] = {
    ("ntu25", 25): ((4, 5, 6, 7, 8, 9, 10, 11, 2, 3), (12, 13, 14, 15, 16, 17, 18, 19, 1, 0)),
    ("openpose18", 18): ((2, 3, 4, 5, 6, 7), (8, 9, 10, 11, 12, 13)),
}


def body_regions(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """The jigsaw's two body regions: (upper, lower), int arrays of equal length K with
    upper[i] <-> lower[i].

    ntu25 and openpose18: upper / lower body (BODY_REGIONS). Any other layout (a JSON file):
    the joints other than the centre, sorted by hop distance from the centre (then index;
    joints not connected to it last), split into a proximal half and a distal half of
    floor((V - 1) / 2) joints each, paired in that order; with V - 1 odd the middle joint
    stays. On a body centred at the chest this is trunk against extremities.
    """
    if (layout.name, layout.num_joints) in BODY_REGIONS:
        upper, lower = BODY_REGIONS[(layout.name, layout.num_joints)]
        return np.array(upper), np.array(lower)
    dist = hop_distance(layout)[layout.center]
    others = sorted(
        (j for j in range(layout.num_joints) if j != layout.center), key=lambda j: (dist[j], j)
    )
    k = len(others) // 2
    if k < 1:
        raise ValueError(
            f"pretext=jigsaw needs two body regions; layout {layout.name!r} has only "
            f"{layout.num_joints} joint(s)"
        )
    return np.array(others[:k]), np.array(others[-k:])


def segment_order_indices(clip_len: int, order) -> np.ndarray:
    """Frame indices (len(order) * L,) with L = clip_len // len(order): the clip's first
    len(order) * L frames cut into consecutive segments of L frames, put in `order` (output
    segment j is input segment order[j]). The clip_len % len(order) frames left over (2 of
    32) are dropped: with equal segments, where the cuts fall says nothing about the order.
    `clip[:, idx]` shuffles; the inverse order, argsort(order), restores."""
    seg = clip_len // len(order)
    return np.concatenate([np.arange(k * seg, (k + 1) * seg) for k in order])


def jigsaw_indices(
    clip_len: int, num_joints: int, regions: tuple[np.ndarray, np.ndarray], perm
) -> tuple[np.ndarray, np.ndarray]:
    """Source (frame, joint) of every output (frame, joint) of the space-time puzzle: two
    (clip_len, V) int arrays, applied as `clip[:, t_idx, v_idx]`.

    Pieces and slots are numbered (region, half): 0 upper/first, 1 upper/second, 2 lower/first,
    3 lower/second half; slot j receives piece perm[j]. The halves are the first and last
    clip_len // 2 frames (an odd clip's middle frame stays). Applying argsort(perm) undoes
    perm."""
    half = clip_len // 2
    halves = (np.arange(half), np.arange(clip_len - half, clip_len))
    pieces = [(r, h) for r in regions for h in halves]
    t_idx = np.repeat(np.arange(clip_len)[:, None], num_joints, axis=1)
    v_idx = np.repeat(np.arange(num_joints)[None, :], clip_len, axis=0)
    for slot, piece in enumerate(perm):
        (r_out, h_out), (r_in, h_in) = pieces[slot], pieces[piece]
        t_idx[np.ix_(h_out, r_out)] = h_in[:, None]
        v_idx[np.ix_(h_out, r_out)] = r_in[None, :]
    return t_idx, v_idx


def _pretext_clip(seq: np.ndarray, rng: np.random.Generator, sampling: SamplingConfig) -> Clip:
    speeds = tuple(sampling.speeds)
    args = dict(clip_len=sampling.clip_len, overflow=sampling.overflow, speeds=speeds)
    return speed_clip(seq, int(rng.choice(speeds)), rng, **args)


def order_views(
    seq: np.ndarray, rng: np.random.Generator, sampling: SamplingConfig
) -> dict[str, np.ndarray]:
    """Clip order prediction (Xu et al. 2019; Table 4): a clip (M, 3 * (clip_len // 3), V, C)
    whose 3 consecutive segments are shuffled (`segment_order_indices`), under `anchor`;
    `label` in 0..5 indexes CLIP_ORDERS; `wrapped` 0 or 1."""
    clip = _pretext_clip(seq, rng, sampling)
    label = int(rng.integers(len(CLIP_ORDERS)))
    idx = segment_order_indices(sampling.clip_len, CLIP_ORDERS[label])
    return {
        "anchor": clip.frames[:, idx],
        "label": np.int64(label),
        "wrapped": np.int64(clip.wrapped),
    }


def jigsaw_views(
    seq: np.ndarray,
    rng: np.random.Generator,
    sampling: SamplingConfig,
    regions: tuple[np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """Space-time jigsaw (Kim et al. 2019; Table 4): a clip (M, clip_len, V, C) whose 4 pieces,
    2 body regions (`body_regions`) x 2 time halves, are shuffled, under `anchor`; `label` in
    0..23 indexes JIGSAW_ORDERS; `wrapped` 0 or 1."""
    clip = _pretext_clip(seq, rng, sampling)
    label = int(rng.integers(len(JIGSAW_ORDERS)))
    t_idx, v_idx = jigsaw_indices(sampling.clip_len, seq.shape[2], regions, JIGSAW_ORDERS[label])
    return {
        "anchor": clip.frames[:, t_idx, v_idx],
        "label": np.int64(label),
        "wrapped": np.int64(clip.wrapped),
    }


def pace_classes(speeds) -> tuple[int, ...]:
    """The classes of pace prediction: the distinct speeds of sampling.speeds, in order."""
    return tuple(dict.fromkeys(int(s) for s in speeds))


def pace_views(
    seq: np.ndarray, rng: np.random.Generator, sampling: SamplingConfig
) -> dict[str, np.ndarray]:
    """Pace prediction (Wang et al. 2020; Table 4): a clip (M, clip_len, V, C) at a speed drawn
    uniformly from `pace_classes(sampling.speeds)`, under `anchor`; `label` indexes the speed
    the clip really has (the effective speed: overflow=cap may lower it); `wrapped` 0 or 1."""
    classes = pace_classes(sampling.speeds)
    r = classes[int(rng.integers(len(classes)))]
    clip = speed_clip(seq, r, rng, sampling.clip_len, sampling.overflow, tuple(sampling.speeds))
    return {
        "anchor": clip.frames,
        "label": np.int64(classes.index(clip.speed)),
        "wrapped": np.int64(clip.wrapped),
    }


def eval_frames(
    seq: np.ndarray,
    frames: int = 64,
    rng: np.random.Generator | None = None,
    crop_min: float = 0.5,
) -> np.ndarray:
    """Classifier input: the whole sequence resampled to `frames` frames.

    Deterministic (rng=None, testing): frame centres of `frames` equal bins. Training: a
    random crop of at least crop_min of the frames, resized the same way.
    """
    _check_sequence(seq)
    t = seq.shape[1]
    lo, length = 0, t
    if rng is not None:
        length = max(1, int(round(t * rng.uniform(crop_min, 1.0))))
        lo = int(rng.integers(0, t - length + 1))
    idx = lo + np.minimum(((np.arange(frames) + 0.5) * length / frames).astype(int), length - 1)
    return seq[:, idx]


def stretch(seq: np.ndarray, min_frames: int) -> np.ndarray:
    """A sequence shorter than `min_frames` resampled to exactly `min_frames` frames by linear
    interpolation in time (`sampling.min_frames`); a longer one, or min_frames=0, unchanged.
    Where a body is absent (all zeros) from either neighbouring frame, the nearer frame is
    taken as it is, so absent bodies are not blended into present ones."""
    _check_sequence(seq)
    t = seq.shape[1]
    if t >= min_frames:
        return seq
    pos = np.linspace(0.0, t - 1, min_frames)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, t - 1)
    w = (pos - lo)[None, :, None, None]
    blend = (1 - w) * seq[:, lo] + w * seq[:, hi]
    present = np.any(seq != 0, axis=(2, 3))  # (M, T)
    both = (present[:, lo] & present[:, hi])[:, :, None, None]
    nearer = seq[:, np.where(pos - lo < 0.5, lo, hi)]
    return np.where(both, blend, nearer).astype(seq.dtype)


def normalize(seq: np.ndarray, layout: Layout, mode: str) -> np.ndarray:
    """Optional skeleton normalisation, applied on load (never baked into the shards).

    center: subtract body 0's centre joint, per frame, from every present body's coordinates.
    center-each: subtract each body's own centre joint, per frame (drops where the bodies
    stand relative to each other).
    center-align: then rotate the sequence so that, in body 0's first frame, the layout's
    bottom->top joints point along +z and the part of left->right orthogonal to it along +x
    (the shoulders lie in the x-z plane). Any 3D layout that declares `align` joints (ntu25,
    kinect20). This is 2s-AGCN's / CTR-GCN's NTU pre-normalisation up to two details: their
    two successive axis-angle rotations put the shoulders exactly on +x and leave the spine
    off +z by the shoulders' tilt (median 4 degrees, 90th percentile 15, on NW-UCLA's first
    frames), where we keep the spine exactly vertical; and the per-frame origin is the
    layout's centre joint (ntu25: spine shoulder; 2s-AGCN: spine mid), which moves the
    skeleton but does not change the rotation.
    """
    if mode == "none":
        return seq
    c = list(layout.coord_channels)
    out = seq.astype(np.float32, copy=True)
    present = np.abs(seq).sum(axis=(2, 3), keepdims=True) > 0  # (M, T, 1, 1)
    body = slice(None) if mode == "center-each" else slice(0, 1)
    origin = seq[body, :, layout.center : layout.center + 1][..., c]  # (1 or M, T, 1, len(c))
    out[..., c] = np.where(present, seq[..., c] - origin, 0.0)
    if mode in ("center", "center-each"):
        return out
    if mode != "center-align":
        raise ConfigError(
            f"data.normalize={mode!r} is not allowed; none, center, center-each, center-align"
        )
    if layout.align is None or len(c) != 3:
        raise ConfigError(
            f"data.normalize=center-align needs a 3D layout with `align` joints; "
            f"layout {layout.name!r} has none"
        )
    bottom, top, left, right = layout.align
    first = out[0, 0][:, c]
    rot = _align_rotation(first[top] - first[bottom], first[right] - first[left])
    return rotate(out, rot, c) * present


def _align_rotation(up: np.ndarray, across: np.ndarray) -> np.ndarray:
    """Rotation taking `up` to +z and the part of `across` orthogonal to it to +x; the
    identity when `up` or that part is degenerate (e.g. untracked joints in the first frame)."""
    if np.linalg.norm(up) < 1e-8:
        return np.eye(3)
    z = up / np.linalg.norm(up)
    x = across - (across @ z) * z
    if np.linalg.norm(x) < 1e-8:
        return np.eye(3)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def pad_bodies(x: np.ndarray, bodies: int) -> np.ndarray:
    """Zero-fill (or cut) the body axis of an (M, T, V, C) array to `bodies`."""
    m = x.shape[0]
    if m == bodies:
        return x
    if m > bodies:
        return x[:bodies]
    pad = np.zeros((bodies - m, *x.shape[1:]), dtype=x.dtype)
    return np.concatenate([x, pad], axis=0)
