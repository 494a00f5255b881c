"""Joint layouts: one edge list per skeleton topology, in one place.

A layout names its joints' graph (0-based edges), the centre joint that the ST-GCN spatial
partition and the normalisation use, and which data channels are coordinates. Everything
else (adjacency, bones, normalisation) is derived from it by pure functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

COORDINATE_CHANNELS = ("x", "y", "z")


@dataclass(frozen=True)
class Layout:
    """A skeleton topology.

    channels: the per-joint data channels in storage order, e.g. ("x", "y", "z") for Kinect
    or ("x", "y", "score") for OpenPose. Only x, y, z are coordinates: rotations, jitter,
    normalisation and the interpolation loss touch those and leave the others alone.
    align: optional (bottom, top, left, right) joints; the `center-align` normalisation turns
    bottom->top onto +z and left->right onto +x (3D layouts only).
    """

    name: str
    num_joints: int
    edges: tuple[tuple[int, int], ...]
    center: int
    channels: tuple[str, ...] = COORDINATE_CHANNELS
    align: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.num_joints < 1:
            raise ValueError(
                f"layout {self.name!r}: num_joints must be >= 1, got {self.num_joints}"
            )
        if not 0 <= self.center < self.num_joints:
            raise ValueError(
                f"layout {self.name!r}: center {self.center} is not a joint index "
                f"(0..{self.num_joints - 1})"
            )
        for i, j in self.edges:
            if not (0 <= i < self.num_joints and 0 <= j < self.num_joints) or i == j:
                raise ValueError(
                    f"layout {self.name!r}: edge [{i}, {j}] is not a pair of distinct joints "
                    f"in 0..{self.num_joints - 1}"
                )
        if not any(c in COORDINATE_CHANNELS for c in self.channels):
            raise ValueError(f"layout {self.name!r}: channels {self.channels} hold no x/y/z")

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def coord_channels(self) -> tuple[int, ...]:
        """Indices of the coordinate channels (x, y, z) among `channels`."""
        return tuple(i for i, c in enumerate(self.channels) if c in COORDINATE_CHANNELS)

    def to_json(self) -> dict:
        out = {
            "name": self.name,
            "num_joints": self.num_joints,
            "edges": [list(e) for e in self.edges],
            "center": self.center,
            "channels": list(self.channels),
        }
        if self.align is not None:
            out["align"] = list(self.align)
        return out


def _one_based(pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((i - 1, j - 1) for i, j in pairs)


# NTU RGB+D / Kinect v2, 25 joints (1-based numbering of the dataset's documentation):
# 1 spine base, 2 spine mid, 3 neck, 4 head, 5-8 left arm (shoulder, elbow, wrist, hand),
# 9-12 right arm, 13-16 left leg (hip, knee, ankle, foot), 17-20 right leg, 21 spine
# shoulder, 22-23 left hand tip / thumb, 24-25 right hand tip / thumb.
NTU25 = Layout(
    name="ntu25",
    num_joints=25,
    edges=_one_based(
        [
            (1, 2),
            (2, 21),
            (3, 21),
            (4, 3),
            (5, 21),
            (6, 5),
            (7, 6),
            (8, 7),
            (9, 21),
            (10, 9),
            (11, 10),
            (12, 11),
            (13, 1),
            (14, 13),
            (15, 14),
            (16, 15),
            (17, 1),
            (18, 17),
            (19, 18),
            (20, 19),
            (22, 23),
            (23, 8),
            (24, 25),
            (25, 12),
        ]
    ),
    center=20,  # spine shoulder (joint 21), as in ST-GCN's NTU graph
    align=(0, 1, 4, 8),  # spine base -> spine mid; left shoulder -> right shoulder
)

# Kinect v1 (Microsoft Kinect SDK 1.x), 20 joints, 0-based as stored by NW-UCLA:
# 0 hip centre, 1 spine, 2 shoulder centre, 3 head, 4-7 left arm (shoulder, elbow, wrist,
# hand), 8-11 right arm, 12-15 left leg (hip, knee, ankle, foot), 16-19 right leg. The SDK's
# bone list (a tree); the same edges as CTR-GCN's NW-UCLA graph.
KINECT20 = Layout(
    name="kinect20",
    num_joints=20,
    edges=(
        (0, 1),
        (1, 2),
        (2, 3),
        (2, 4),
        (4, 5),
        (5, 6),
        (6, 7),
        (2, 8),
        (8, 9),
        (9, 10),
        (10, 11),
        (0, 12),
        (12, 13),
        (13, 14),
        (14, 15),
        (0, 16),
        (16, 17),
        (17, 18),
        (18, 19),
    ),
    # shoulder centre: the hub of the tree, the role spine shoulder plays in ntu25 (and the
    # root with the zero bone in CTR-GCN's NW-UCLA bone pairs)
    center=2,
    # hip centre -> shoulder centre; left shoulder -> right shoulder. Not hip centre -> spine
    # (ntu25's choice): Kinect v1's spine joint sits only ~7 cm above the hip centre (NTU's
    # spine mid: ~27 cm), so that direction is noisy; the whole torso is ~41 cm on NW-UCLA.
    align=(0, 2, 4, 8),
)

# OpenPose COCO-18 (Kinetics-Skeleton): 0 nose, 1 neck, 2-4 right arm, 5-7 left arm,
# 8-10 right leg, 11-13 left leg, 14-17 eyes and ears. Channels x, y, confidence.
OPENPOSE18 = Layout(
    name="openpose18",
    num_joints=18,
    edges=(
        (4, 3),
        (3, 2),
        (7, 6),
        (6, 5),
        (13, 12),
        (12, 11),
        (10, 9),
        (9, 8),
        (11, 5),
        (8, 2),
        (5, 1),
        (2, 1),
        (0, 1),
        (15, 0),
        (14, 0),
        (17, 15),
        (16, 14),
    ),
    center=1,
    channels=("x", "y", "score"),
)

BUILTIN = {layout.name: layout for layout in (NTU25, KINECT20, OPENPOSE18)}


def layout_from_dict(d: dict) -> Layout:
    """Build a layout from its JSON form: name, num_joints, edges (0-based), center,
    optional channels (default x, y, z) and align."""
    missing = [k for k in ("name", "num_joints", "edges", "center") if k not in d]
    if missing:
        raise ValueError(f"layout JSON lacks {missing}; needs name, num_joints, edges, center")
    return Layout(
        name=str(d["name"]),
        num_joints=int(d["num_joints"]),
        edges=tuple((int(i), int(j)) for i, j in d["edges"]),
        center=int(d["center"]),
        channels=tuple(d.get("channels", COORDINATE_CHANNELS)),
        align=tuple(d["align"]) if d.get("align") is not None else None,
    )


def get_layout(name_or_path: str | Path) -> Layout:
    """A built-in layout by name (ntu25, kinect20, openpose18) or a layout JSON file."""
    key = str(name_or_path)
    if key in BUILTIN:
        return BUILTIN[key]
    path = Path(key)
    if path.suffix == ".json" and path.is_file():
        try:
            return layout_from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            raise ValueError(
                f"layout file {path}: not a valid layout ({e}); expected "
                '{"name", "num_joints", "edges": [[i, j], ...], "center"}'
            ) from None
    raise ValueError(
        f"unknown layout {key!r}: use one of {sorted(BUILTIN)} or a path to a layout .json"
    )
