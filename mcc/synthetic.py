"""The embedded synthetic dataset: labelled skeleton motions on the 25-joint NTU layout.

Each class is a cyclic choreography of whole-body "moves" (each move drives several limbs
along a loop that starts and ends at rest). By default all classes use the same five moves
and differ only in their order: every class visits the same set of poses, so a single frame
cannot give the class away, and a model must read which move follows which.
Nuisances per sample: playback speed, start phase, move amplitude and duration, body
proportions (per subject), camera rotation, idle sway, sensor noise, sequence length, and
sometimes a second (idle) person. Subjects split train / test like NTU's x-sub.

Deterministic by seed; generated in a stream through the shared ShardWriter, so any size
(up to NTU scale) fits in memory.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mcc.graph import hop_distance
from mcc.layouts import NTU25
from mcc.shards import Sample, ShardWriter


@dataclass(frozen=True)
class SyntheticConfig:
    num_classes: int = 12
    train_per_class: int = 60
    test_per_class: int = 25
    num_subjects: int = 20  # half perform the training samples, half the test samples
    min_frames: int = 40
    max_frames: int = 300
    speed_min: float = 0.5  # playback speed range (log-uniform)
    speed_max: float = 2.0
    move_frames: int = 24  # frames of one move at speed 1
    moves_per_sequence: int = 6  # one cycle of the 5-move choreography, plus one
    idle_frames: int = 30  # up to this many idle frames before and after
    amplitude_jitter: float = 0.3  # per move instance, relative
    duration_jitter: float = 0.25
    sway: float = 0.12  # idle sway amplitude on every joint angle (radians)
    height_jitter: float = 0.15  # per subject, relative
    limb_jitter: float = 0.1  # per subject, arm and leg lengths, relative
    yaw_degrees: float = 45.0  # camera yaw range, +-
    pitch_degrees: float = 10.0
    noise: float = 0.015  # sensor noise (meters)
    second_person: float = 0.3  # probability of a second person
    partner: bool = False  # the second person performs the class too (own timing, body); else idle
    seed: int = 0


# Rest pose, metres, y up, facing +z; index = NTU joint (0-based).
# fmt: off
_REST = np.array([
    [0, 0.0, 0], [0, 0.25, 0], [0, 0.58, 0], [0, 0.72, 0],  # spine base, mid, neck, head
    [-0.18, 0.47, 0], [-0.22, 0.20, 0], [-0.24, -0.02, 0], [-0.245, -0.08, 0],  # left arm
    [0.18, 0.47, 0], [0.22, 0.20, 0], [0.24, -0.02, 0], [0.245, -0.08, 0],  # right arm
    [-0.09, -0.02, 0], [-0.10, -0.45, 0], [-0.10, -0.86, 0], [-0.10, -0.90, 0.10],  # left leg
    [0.09, -0.02, 0], [0.10, -0.45, 0], [0.10, -0.86, 0], [0.10, -0.90, 0.10],  # right leg
    [0, 0.50, 0],  # spine shoulder
    [-0.25, -0.14, 0], [-0.22, -0.10, 0.02], [0.25, -0.14, 0], [0.22, -0.10, 0.02],  # hands
], dtype=np.float64)
# fmt: on

# Joint-angle degrees of freedom: (joint whose subtree turns, axis).
DOFS = (
    (4, 0), (4, 2), (5, 0),  # 0-2 left shoulder pitch, abduction, elbow
    (8, 0), (8, 2), (9, 0),  # 3-5 right shoulder pitch, abduction, elbow
    (12, 0), (13, 0), (16, 0), (17, 0),  # 6-9 hips and knees (pitch)
    (1, 0), (1, 1), (2, 0),  # 10-12 torso bend, torso twist, head nod
    (12, 2), (16, 2), (1, 2),  # 13-15 hip abduction left, right, torso side bend
)  # fmt: skip

# Moves: a loop in angle space that starts and ends at rest,
# delta(u) = (1 - cos 2 pi u) / 2 * out + sin(2 pi u) * side, u in [0, 1].
MOVES = (
    ({0: 1.4, 3: 1.4}, {1: 0.9, 4: -0.9}),  # arm circles, both arms
    ({6: 1.0, 8: 1.0, 7: -1.5, 9: -1.5, 10: 0.3}, {0: 0.9, 3: 0.9, 15: 0.3}),  # squat, sweep
    ({6: 0.9, 0: -0.5}, {13: 0.6, 1: 0.7}),  # left leg and left arm circle
    ({10: 0.7, 12: 0.3}, {15: 0.5, 11: 0.4}),  # torso circle
    ({8: 0.9, 3: -0.5}, {14: -0.6, 4: -0.7}),  # right leg and right arm circle
    ({3: 1.5, 5: 0.6}, {4: -1.0, 11: -0.3}),  # right arm circle with twist
)


def class_choreographies(num_classes: int, seed: int = 0) -> list[tuple[int, ...]]:
    """The cyclic order of moves of each class.

    Up to 24 classes: distinct cyclic orders of moves 0-4, so that all classes share one
    pose set (every move starts and ends at rest) and differ only in which move follows
    which. More classes take cyclic orders of other 5-move subsets of the 6 moves.
    """
    table = []
    for subset in itertools.combinations(range(len(MOVES)), 5):
        first, rest = subset[0], subset[1:]
        table.append([(first, *perm) for perm in itertools.permutations(rest)])
    base, extra = table[0], [order for group in table[1:] for order in group]
    rng = np.random.default_rng(seed)
    rng.shuffle(base)
    rng.shuffle(extra)
    orders = base + extra
    if num_classes > len(orders):
        raise ValueError(f"synthetic: at most {len(orders)} classes, asked for {num_classes}")
    return orders[:num_classes]


def _parents() -> np.ndarray:
    hop = hop_distance(NTU25)[:, 0]
    par = np.full(NTU25.num_joints, -1)
    for i, j in NTU25.edges:
        if hop[i] == hop[j] + 1:
            par[i] = j
        elif hop[j] == hop[i] + 1:
            par[j] = i
    return par


_PARENT = _parents()
_ORDER = np.argsort(hop_distance(NTU25)[:, 0], kind="stable")


def _axis_rotation(angle: np.ndarray, axis: int) -> np.ndarray:
    """(T,) angles -> (T, 3, 3) rotations about x (0), y (1) or z (2)."""
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros((len(angle), 3, 3))
    a, b = [k for k in range(3) if k != axis]
    r[:, axis, axis] = 1
    r[:, a, a], r[:, a, b], r[:, b, a], r[:, b, b] = c, -s, s, c
    return r


def forward_kinematics(angles: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """angles (T, len(DOFS)) -> joint positions (T, 25, 3) with the root fixed at the origin."""
    t = angles.shape[0]
    local = np.tile(np.eye(3), (NTU25.num_joints, t, 1, 1))
    for d, (joint, axis) in enumerate(DOFS):
        local[joint] = local[joint] @ _axis_rotation(angles[:, d], axis)
    world = np.zeros_like(local)
    pos = np.zeros((NTU25.num_joints, t, 3))
    for j in _ORDER:
        p = _PARENT[j]
        if p < 0:
            world[j] = local[j]
            continue
        pos[j] = pos[p] + world[p] @ (rest[j] - rest[p])
        world[j] = world[p] @ local[j]
    return pos.transpose(1, 0, 2)


def _angles(order: tuple[int, ...], cfg: SyntheticConfig, rng) -> np.ndarray:
    """Joint-angle trajectories (frames, len(DOFS)) of one performance: idle lead-in, the
    class's cyclic choreography from a random move and phase for `moves_per_sequence` moves,
    idle tail. Its length follows from the speed and the jitters, clipped to the range."""
    speed = float(np.exp(rng.uniform(np.log(cfg.speed_min), np.log(cfg.speed_max))))
    first = int(rng.integers(len(order)))
    moves = [order[(first + i) % len(order)] for i in range(cfg.moves_per_sequence)]
    jit = cfg.duration_jitter
    durations = cfg.move_frames / speed * rng.uniform(1 - jit, 1 + jit, size=len(moves))
    lead = rng.uniform(0, cfg.idle_frames) - rng.uniform(0, 0.5) * durations[0]  # start phase
    frames = int(round(lead + durations.sum() + rng.uniform(0, cfg.idle_frames)))
    frames = int(np.clip(frames, cfg.min_frames, cfg.max_frames))
    t = np.arange(frames)
    angles = np.zeros((frames, len(DOFS)))
    edge = lead
    for dur, m in zip(durations, moves):
        u = (t - edge) / dur
        inside = (u >= 0) & (u < 1)
        out, side = MOVES[m]
        amp = rng.uniform(1 - cfg.amplitude_jitter, 1 + cfg.amplitude_jitter)
        for dof, a in out.items():
            angles[inside, dof] += amp * a * (1 - np.cos(2 * np.pi * u[inside])) / 2
        for dof, a in side.items():
            angles[inside, dof] += amp * a * np.sin(2 * np.pi * u[inside])
        edge += dur
    return angles + _sway(frames, cfg, rng)


def _sway(frames: int, cfg: SyntheticConfig, rng) -> np.ndarray:
    t = np.arange(frames)[:, None]
    freq = rng.uniform(0.005, 0.05, size=(1, len(DOFS)))
    phase = rng.uniform(0, 2 * np.pi, size=(1, len(DOFS)))
    amp = rng.uniform(0, cfg.sway, size=(1, len(DOFS)))
    return amp * np.sin(2 * np.pi * freq * t + phase)


_ARM = [5, 6, 7, 9, 10, 11, 21, 22, 23, 24]
_LEG = [13, 14, 15, 17, 18, 19]


def _subject_body(subject: int, cfg: SyntheticConfig) -> np.ndarray:
    """Rest pose with per-subject proportions: overall height, arm and leg lengths."""
    rng = np.random.default_rng([cfg.seed, 7919, subject])
    h, lim = cfg.height_jitter, cfg.limb_jitter
    scale = np.full(NTU25.num_joints, rng.uniform(1 - h, 1 + h))
    arm, leg = rng.uniform(1 - lim, 1 + lim, size=2)
    scale[_ARM] *= arm
    scale[_LEG] *= leg
    body = np.zeros_like(_REST)
    for j in _ORDER:
        p = _PARENT[j]
        if p >= 0:
            body[j] = body[p] + (_REST[j] - _REST[p]) * scale[j]
    return body


def _camera(cfg: SyntheticConfig, rng) -> np.ndarray:
    yaw = np.deg2rad(rng.uniform(-cfg.yaw_degrees, cfg.yaw_degrees))
    pitch = np.deg2rad(rng.uniform(-cfg.pitch_degrees, cfg.pitch_degrees))
    return _axis_rotation(np.array([pitch]), 0)[0] @ _axis_rotation(np.array([yaw]), 1)[0]


def make_sample(
    index: int, label: int, split: str, subject: int, cfg: SyntheticConfig, classes
) -> Sample:
    rng = np.random.default_rng([cfg.seed, index])
    body = _subject_body(subject, cfg)
    people = [forward_kinematics(_angles(classes[label], cfg, rng), body)]
    frames = people[0].shape[0]
    if rng.random() < cfg.second_person:
        if cfg.partner:
            angles = _fit_length(_angles(classes[label], cfg, rng), frames)
        else:
            angles = _sway(frames, cfg, rng) * 2
        other = forward_kinematics(angles, _subject_body(subject + 10_000, cfg))
        people.append(other + np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.4), 0, 0.3]))
    cam = _camera(cfg, rng)
    shift = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.2, 0.2), rng.uniform(2.5, 4.0)])
    joints = np.stack(people) @ cam.T + shift
    joints += rng.normal(0, cfg.noise, size=joints.shape)
    return Sample(
        sample_id=f"syn{index:06d}",
        label=label,
        split=split,
        joints=joints.astype(np.float32),
        subject=subject,
    )


def _fit_length(angles: np.ndarray, frames: int) -> np.ndarray:
    """Crop, or hold the last pose, to `frames` frames."""
    if len(angles) >= frames:
        return angles[:frames]
    return np.concatenate([angles, np.repeat(angles[-1:], frames - len(angles), axis=0)])


def class_name(order: tuple[int, ...]) -> str:
    return "-".join(f"m{m}" for m in order)


def generate(out_dir, cfg: SyntheticConfig = SyntheticConfig(), progress: bool = False):
    """Write the dataset to out_dir through the shared writer; returns the manifest."""
    classes = class_choreographies(cfg.num_classes, cfg.seed)
    writer = ShardWriter(
        out_dir,
        name="synthetic",
        layout=NTU25,
        classes=[class_name(c) for c in classes],
        source=f"mcc.synthetic generator, {cfg}",
    )
    half = max(1, cfg.num_subjects // 2)
    jobs = [
        (split, label)
        for split, per_class in (("train", cfg.train_per_class), ("test", cfg.test_per_class))
        for label in range(cfg.num_classes)
        for _ in range(per_class)
    ]
    it = enumerate(jobs)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(jobs), desc="synthetic", dynamic_ncols=True)
    for index, (split, label) in it:
        sub_rng = np.random.default_rng([cfg.seed, index, 1])
        subject = int(sub_rng.integers(half)) + (0 if split == "train" else half)
        writer.add(make_sample(index, label, split, subject, cfg, classes))
    return writer.close(extra={"generator": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}})
