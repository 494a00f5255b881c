"""The embedded synthetic dataset: labelled skeleton motions on the 25-joint NTU layout.

Every sample moves five limbs at once (left arm, right arm, torso, left leg, right leg), each
round a loop in joint-angle space that passes through the rest pose. A class fixes, for each
limb, the direction of its loop and its tempo (once or twice per cycle of the slowest loop);
any two classes differ in at least two limbs. A loop's poses do not depend on its direction or
tempo, and each sample draws every loop's phase at random, so all classes visit the same
poses: a single frame cannot give the class away, and a model must read how the limbs move.
Nuisances per sample in the default (`motion`) variant: playback speed, length, each loop's
phase and period, idle sway, sensor noise, idle lead-in and tail. The `static-cues` variant
adds constants per sequence: loop amplitude and width, body proportions (per subject), a
camera rotation and, sometimes, a second (idle) person. Subjects split train / test like
NTU's x-sub.

Deterministic by seed; generated in a stream through the shared ShardWriter, so any size
(up to NTU scale) fits in memory.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from mcc.graph import hop_distance
from mcc.layouts import NTU25
from mcc.shards import Sample, ShardWriter


@dataclass(frozen=True)
class SyntheticConfig:
    """The generator's settings. The defaults are the `motion` variant, the embedded default
    set: every nuisance that is constant over a sequence and that the default normalisation
    (`center`) does not remove is off, because MCC's instance discrimination latches onto
    such a constant instead of the motion (docs/findings.md). `--set variant=static-cues`
    starts from the set with such constants instead (VARIANTS)."""

    variant: str = "motion"  # motion | static-cues: which VARIANTS entry the values start from
    num_classes: int = 12
    # Skip the first class_offset classes of the seed's class table: two sets with the same
    # seed and disjoint [class_offset, class_offset + num_classes) share no class (a source /
    # target pair for transfer, Tables 6, 7).
    class_offset: int = 0
    train_per_class: int = 60
    test_per_class: int = 25
    num_subjects: int = 20  # half perform the training samples, half the test samples
    min_frames: int = 64  # a clip at speed 2 (64 frames) fits every sequence
    max_frames: int = 160
    speed_min: float = 0.8  # playback speed range (log-uniform)
    speed_max: float = 1.25
    period_frames: int = 32  # frames of one cycle of a tempo-1 loop at speed 1
    loop_width: float = 0.5  # how wide each loop is (0: a back-and-forth line, no direction)
    idle_frames: int = 10  # up to this many idle frames before and after
    amplitude_jitter: float = 0.0  # per loop and sample, relative
    width_jitter: float = 0.0  # per loop and sample, relative (the loop's width)
    period_jitter: float = 0.1  # per loop and sample, relative
    sway: float = 0.03  # idle sway amplitude on every joint angle (radians)
    height_jitter: float = 0.0  # per subject, relative
    limb_jitter: float = 0.0  # per subject, arm and leg lengths, relative
    yaw_degrees: float = 0.0  # camera yaw range, +-
    pitch_degrees: float = 0.0
    noise: float = 0.015  # sensor noise (meters)
    second_person: float = 0.0  # probability of a second person
    partner: bool = False  # the second person performs the class too (own timing, body); else idle
    seed: int = 0


# Named starting points for `prepare synthetic --set variant=NAME`; other --set values apply
# on top. `static-cues` keeps the same motions and adds the constants: body proportions per
# subject, a camera per sample, loop amplitude and width per sample, a wide
# range of speeds and lengths, strong idle sway and an idle second person in 30 % of the
# sequences. On it MCC's features encode those constants, not the class, which is what the
# set is for: a check that a method learns motion rather than identity (docs/findings.md).
VARIANTS: dict[str, dict] = {
    "motion": {},
    "static-cues": {
        "min_frames": 40, "max_frames": 300, "speed_min": 0.5, "speed_max": 2.0,
        "idle_frames": 30, "amplitude_jitter": 0.3, "width_jitter": 0.3, "sway": 0.12,
        "height_jitter": 0.15, "limb_jitter": 0.1, "yaw_degrees": 45.0, "pitch_degrees": 10.0,
        "second_person": 0.3,
    },
}  # fmt: skip


def synthetic_config(overrides: dict | None = None) -> SyntheticConfig:
    """The config of `--set` overrides: the named variant's values first (default `motion`),
    then the other overrides, each checked against SyntheticConfig."""
    from mcc.config import ConfigError, apply_overrides

    overrides = dict(overrides or {})
    variant = str(overrides.pop("variant", "motion"))
    if variant not in VARIANTS:
        raise ConfigError(f"variant={variant!r} is not allowed; choose {', '.join(VARIANTS)}")
    base = dataclasses.replace(SyntheticConfig(), variant=variant, **VARIANTS[variant])
    return apply_overrides(base, overrides)


# Rest pose, metres, y up, facing +z; index = NTU joint (0-based).
# fmt: off
REST_POSE = np.array([
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

# Limb loops: each drives a few joint angles around an ellipse that passes through rest,
# delta(phi) = (1 - cos phi) / 2 * out + direction * sin(phi) * side * loop_width.
# Either direction traces the same poses; only the order in which they come differs.
LOOPS = (
    ({0: 1.3, 2: -0.4}, {1: 0.8}),  # left arm: shoulder pitch and elbow, abduction
    ({3: 1.3, 5: -0.4}, {4: -0.8}),  # right arm
    ({10: 0.5, 12: 0.3}, {15: 0.4, 11: 0.3}),  # torso bend and nod, side bend and twist
    ({6: 0.8, 7: -0.9}, {13: 0.5}),  # left leg: hip and knee, hip abduction
    ({8: 0.8, 9: -0.9}, {14: -0.5}),  # right leg
)
TEMPOS = (1.0, 2.0)  # cycles per period of a tempo-1 loop


def class_patterns(num_classes: int, seed: int = 0) -> list[tuple[tuple[int, int], ...]]:
    """Each class: for every loop, a (direction, tempo) pair, direction +1 / -1 and tempo an
    index into TEMPOS.

    The first classes differ in the tempo of at least two loops (relative tempo: at least one
    loop runs at tempo 1, so no class is another one played faster), each loop going in a
    seeded direction; past the 16 such patterns, classes that differ in at least two
    (direction, tempo) pairs join in. A loop's poses do not depend on its direction or tempo,
    and every sample draws each loop's phase at random, so all classes visit the same poses
    with the same frequencies: only the motion tells them apart.
    """
    rng = np.random.default_rng(seed)
    n = len(LOOPS)
    # an even number of loops at tempo 2: any two differ in two loops, and one runs at tempo 1
    tempos = [t for t in itertools.product((0, 1), repeat=n) if sum(t) % 2 == 0]
    rng.shuffle(tempos)
    patterns = [tuple(zip(rng.choice([1, -1], size=n).tolist(), t)) for t in tempos]
    patterns = patterns[:num_classes]
    full = [tuple(zip(d, t)) for t in tempos for d in itertools.product((1, -1), repeat=n)]
    rng.shuffle(full)
    for c in full:
        if len(patterns) == num_classes:
            break
        if all(sum(x != y for x, y in zip(c, o)) >= 2 for o in patterns):
            patterns.append(c)
    if len(patterns) < num_classes:
        raise ValueError(f"synthetic: at most {len(patterns)} classes, asked for {num_classes}")
    return patterns


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


def _angles(pattern, cfg: SyntheticConfig, rng) -> np.ndarray:
    """Joint-angle trajectories (frames, len(DOFS)) of one performance: an idle lead-in, every
    loop cycling in the class's direction and tempo from a random phase, an idle tail. Speed,
    length, amplitudes and each loop's phase and shape are drawn per sample."""
    speed = float(np.exp(rng.uniform(np.log(cfg.speed_min), np.log(cfg.speed_max))))
    frames = int(np.exp(rng.uniform(np.log(cfg.min_frames), np.log(cfg.max_frames))))
    t = np.arange(frames)
    lead, tail = rng.uniform(0, cfg.idle_frames, size=2).clip(0, frames / 4)
    # fade in after the lead-in and out before the tail (20 frames at speed 1)
    ramp = 20 / speed
    envelope = np.clip(np.minimum(t - lead, frames - tail - t) / ramp, 0, 1)
    envelope = (1 - np.cos(np.pi * envelope)) / 2
    angles = np.zeros((frames, len(DOFS)))
    jit = cfg.period_jitter
    for (out, side), (direction, tempo) in zip(LOOPS, pattern):
        period = cfg.period_frames / speed / TEMPOS[tempo] * rng.uniform(1 - jit, 1 + jit)
        phi = 2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(1 - cfg.amplitude_jitter, 1 + cfg.amplitude_jitter)
        width = direction * cfg.loop_width * rng.uniform(1 - cfg.width_jitter, 1 + cfg.width_jitter)
        for dof, a in out.items():
            angles[:, dof] += amp * a * (1 - np.cos(phi)) / 2 * envelope
        for dof, a in side.items():
            angles[:, dof] += amp * a * width * np.sin(phi) * envelope
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
    body = np.zeros_like(REST_POSE)
    for j in _ORDER:
        p = _PARENT[j]
        if p >= 0:
            body[j] = body[p] + (REST_POSE[j] - REST_POSE[p]) * scale[j]
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


LOOP_NAMES = ("left-arm", "right-arm", "torso", "left-leg", "right-leg")


def class_name(pattern) -> str:
    """e.g. 'left-arm+ right-arm-x2 torso+ left-leg- right-leg+': direction, then tempo."""
    return " ".join(
        f"{n}{'+' if d > 0 else '-'}{'' if t == 0 else f'x{TEMPOS[t]:g}'}"
        for n, (d, t) in zip(LOOP_NAMES, pattern)
    )


def generate(out_dir, cfg: SyntheticConfig = SyntheticConfig(), progress: bool = False):
    """Write the dataset to out_dir through the shared writer; returns the manifest."""
    if cfg.class_offset < 0:
        raise ValueError(f"synthetic: class_offset={cfg.class_offset} must be >= 0")
    classes = class_patterns(cfg.class_offset + cfg.num_classes, cfg.seed)[cfg.class_offset :]
    writer = ShardWriter(
        out_dir,
        name="synthetic",
        layout=NTU25,
        classes=[class_name(c) for c in classes],
        source=f"mcc.datasets.synthetic generator, {cfg}",
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


def prepare_if_missing(path, progress: bool = True) -> bool:
    """Generate the embedded default set in `path` unless a prepared dataset is already there
    (the first use of `python tune/sweep.py`, `python -m mcc demo` and the ablations); True
    when it generated one."""
    from mcc import files
    from mcc.shards import MANIFEST

    if files.exists(files.join(path, MANIFEST)):
        return False
    print(f"preparing the synthetic dataset in {path}", flush=True)
    generate(path, SyntheticConfig(), progress=progress)
    return True
