"""Joint layouts and the graph helpers derived from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import NATOPS_LAYOUT  # noqa: E402

from mcc.graph import hop_distance, normalize_digraph, parents, spatial_partition
from mcc.layouts import BUILTIN, KINECT20, NTU25, OPENPOSE18, Layout, get_layout, layout_from_dict


def chain(n: int, center: int = 0) -> Layout:
    return Layout(f"chain{n}", n, tuple((i, i + 1) for i in range(n - 1)), center)


def is_forest(layout: Layout) -> bool:
    """No cycles: union-find over the edges."""
    root = list(range(layout.num_joints))

    def find(i):
        while root[i] != i:
            i = root[i]
        return i

    for i, j in layout.edges:
        a, b = find(i), find(j)
        if a == b:
            return False
        root[a] = b
    return True


# --- built-in layouts -------------------------------------------------------------------------


def test_ntu25():
    assert NTU25.num_joints == 25
    assert len(NTU25.edges) == 24
    assert len({frozenset(e) for e in NTU25.edges}) == 24
    assert NTU25.center == 20
    assert NTU25.channels == ("x", "y", "z") and NTU25.coord_channels == (0, 1, 2)
    assert NTU25.num_channels == 3
    assert is_forest(NTU25)
    assert np.isfinite(hop_distance(NTU25)).all()  # one connected tree
    # dataset numbering (1-based): spine base-spine mid, right hand tip-thumb-hand
    assert (0, 1) in NTU25.edges and (23, 24) in NTU25.edges and (24, 11) in NTU25.edges


def test_kinect20():
    """Kinect v1 (NW-UCLA): the SDK's 19 bones, a tree around the shoulder centre; aligned
    on the torso (hip centre -> shoulder centre) and the shoulders (left -> right)."""
    assert KINECT20.num_joints == 20 and len({frozenset(e) for e in KINECT20.edges}) == 19
    assert is_forest(KINECT20) and np.isfinite(hop_distance(KINECT20)).all()
    assert KINECT20.center == 2 and KINECT20.align == (0, 2, 4, 8)
    # arms hang from the shoulder centre, legs from the hip centre
    assert {(2, 4), (2, 8), (0, 12), (0, 16), (6, 7), (18, 19)} <= set(KINECT20.edges)


def test_openpose18():
    assert OPENPOSE18.num_joints == 18
    assert len(OPENPOSE18.edges) == 17
    assert OPENPOSE18.center == 1
    assert OPENPOSE18.channels == ("x", "y", "score")
    assert OPENPOSE18.coord_channels == (0, 1)
    assert OPENPOSE18.align is None
    assert is_forest(OPENPOSE18)
    assert np.isfinite(hop_distance(OPENPOSE18)).all()


def test_builtin_by_name():
    assert get_layout("ntu25") is NTU25
    assert get_layout("openpose18") is OPENPOSE18
    assert get_layout("kinect20") is KINECT20
    assert sorted(BUILTIN) == ["kinect20", "ntu25", "openpose18"]


def test_unknown_name_lists_builtins():
    with pytest.raises(ValueError) as e:
        get_layout("kinect99")
    msg = str(e.value)
    assert "kinect99" in msg and "ntu25" in msg and "openpose18" in msg


def test_missing_json_file_is_unknown(tmp_path):
    with pytest.raises(ValueError, match="unknown layout"):
        get_layout(tmp_path / "nope.json")


def test_to_json_round_trip():
    for layout in (NTU25, OPENPOSE18):
        assert layout_from_dict(json.loads(json.dumps(layout.to_json()))) == layout


# --- layout JSON files ------------------------------------------------------------------------


def write(tmp_path, d, name="layout.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(d) if not isinstance(d, str) else d)
    return p


def test_json_layout(tmp_path):
    p = write(tmp_path, {"name": "tri", "num_joints": 3, "edges": [[0, 1], [1, 2]], "center": 1})
    lay = get_layout(p)
    assert lay.name == "tri" and lay.num_joints == 3
    assert lay.edges == ((0, 1), (1, 2))
    assert lay.center == 1
    assert lay.channels == ("x", "y", "z") and lay.align is None
    assert get_layout(str(p)) == lay


def test_json_layout_channels_and_align(tmp_path):
    d = {
        "name": "p",
        "num_joints": 4,
        "edges": [[0, 1], [1, 2], [1, 3]],
        "center": 1,
        "channels": ["x", "y", "score"],
        "align": [0, 1, 2, 3],
    }
    lay = get_layout(write(tmp_path, d))
    assert lay.coord_channels == (0, 1)
    assert lay.align == (0, 1, 2, 3)


def test_natops_layout():
    lay = get_layout(NATOPS_LAYOUT)
    assert lay.name == "natops8"
    assert lay.num_joints == 8
    assert lay.center == 2
    assert len(lay.edges) == 7
    assert is_forest(lay)
    assert lay.coord_channels == (0, 1, 2)
    d = hop_distance(lay)[:, 2]
    assert np.isfinite(d).all()
    assert d.tolist() == [2, 3, 0, 1, 1, 2, 2, 3]
    assert parents(lay).tolist() == [4, 5, 2, 2, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "d, words",
    [
        ({"name": "x", "num_joints": 3, "edges": [[0, 3]], "center": 0}, ["edge", "[0, 3]"]),
        ({"name": "x", "num_joints": 3, "edges": [[-1, 1]], "center": 0}, ["edge"]),
        ({"name": "x", "num_joints": 3, "edges": [[1, 1]], "center": 0}, ["edge", "distinct"]),
        ({"name": "x", "num_joints": 3, "edges": [[0, 1]]}, ["center"]),
        ({"name": "x", "edges": [[0, 1]], "center": 0}, ["num_joints"]),
        ({"num_joints": 2, "edges": [[0, 1]], "center": 0}, ["name"]),
        ({"name": "x", "num_joints": 3, "edges": [[0, 1]], "center": 3}, ["center 3", "0..2"]),
        ({"name": "x", "num_joints": 0, "edges": [], "center": 0}, ["num_joints"]),
        (
            {"name": "x", "num_joints": 2, "edges": [[0, 1]], "center": 0, "channels": ["a"]},
            ["channels"],
        ),
        ("{not json", ["not a valid layout", "layout.json"]),
    ],
)
def test_bad_json_layouts(tmp_path, d, words):
    with pytest.raises(ValueError) as e:
        get_layout(write(tmp_path, d))
    for w in words:
        assert w in str(e.value)


# --- graph ------------------------------------------------------------------------------------


def test_hop_distance_chain():
    lay = chain(5)
    d = hop_distance(lay)
    idx = np.arange(5)
    assert np.array_equal(d, np.abs(idx[:, None] - idx[None, :]).astype(float))
    d1 = hop_distance(lay, max_hop=1)
    expected = np.where(np.abs(idx[:, None] - idx[None, :]) <= 1, d, np.inf)
    assert np.array_equal(d1, expected)


def test_hop_distance_disconnected():
    lay = Layout("two", 4, ((0, 1), (2, 3)), 0)
    d = hop_distance(lay)
    assert d[0, 1] == 1 and d[2, 3] == 1
    assert np.isinf(d[0, 2]) and np.isinf(d[1, 3])


def test_parents_chain():
    assert parents(chain(3)).tolist() == [0, 0, 1]
    assert parents(chain(5, center=2)).tolist() == [1, 2, 2, 2, 3]


def test_parents_ntu():
    p = parents(NTU25)
    assert p[20] == 20
    assert p[1] == 20 and p[0] == 1  # spine mid -> spine shoulder; base -> mid
    assert p[3] == 2 and p[2] == 20  # head -> neck -> spine shoulder
    assert p[4] == 20 and p[5] == 4  # left shoulder, left elbow
    # ST-GCN's NTU graph: hand tip - thumb - hand (1-based 22-23, 23-8)
    assert p[22] == 7 and p[21] == 22
    d = hop_distance(NTU25)[:, 20]
    for v in range(25):
        if v != 20:
            assert d[p[v]] == d[v] - 1


def test_normalize_digraph_columns():
    a = np.array([[1.0, 1, 0], [1, 1, 1], [0, 1, 1]])
    n = normalize_digraph(a)
    np.testing.assert_allclose(n.sum(axis=0), 1.0)
    np.testing.assert_allclose(n[:, 1], [1 / 3, 1 / 3, 1 / 3])
    z = normalize_digraph(np.zeros((2, 2)))
    assert (z == 0).all()


def test_spatial_partition_chain_by_hand():
    parts = spatial_partition(chain(3))
    assert parts.shape == (3, 3, 3) and parts.dtype == np.float32
    # column degrees of the 1-hop graph with self loops: 2, 3, 2
    root = np.diag([1 / 2, 1 / 3, 1 / 2])
    # [k, j, i]: j's contribution to i; part 1 when j is farther from the centre than i
    farther = np.zeros((3, 3))
    farther[1, 0] = 1 / 2
    farther[2, 1] = 1 / 3
    nearer = np.zeros((3, 3))
    nearer[0, 1] = 1 / 3
    nearer[1, 2] = 1 / 2
    np.testing.assert_allclose(parts[0], root, atol=1e-7)
    np.testing.assert_allclose(parts[1], farther, atol=1e-7)
    np.testing.assert_allclose(parts[2], nearer, atol=1e-7)


@pytest.mark.parametrize("layout", [NTU25, OPENPOSE18, chain(6, center=3)], ids=lambda x: x.name)
def test_spatial_partition_sums_to_normalised_adjacency(layout):
    parts = spatial_partition(layout)
    v = layout.num_joints
    assert parts.shape == (3, v, v)
    a = np.eye(v)
    for i, j in layout.edges:
        a[i, j] = a[j, i] = 1
    np.testing.assert_allclose(parts.sum(axis=0), a / a.sum(axis=0)[None, :], atol=1e-6)
    np.testing.assert_allclose(parts.sum(axis=0).sum(axis=0), np.ones(v), atol=1e-6)
    # in a tree no two neighbours are equally far from the centre: root part is diagonal
    assert np.array_equal(parts[0], np.diag(np.diag(parts[0])))
    assert (np.diag(parts[0]) > 0).all()
    # parts do not overlap
    assert ((parts > 0).sum(axis=0) <= 1).all()


def test_spatial_partition_natops():
    lay = get_layout(NATOPS_LAYOUT)
    parts = spatial_partition(lay)
    np.testing.assert_allclose(parts.sum(axis=(0, 1)), np.ones(8), atol=1e-6)
    assert np.array_equal(parts[0], np.diag(np.diag(parts[0])))


def test_spatial_partition_cycle_puts_equal_distance_in_root():
    tri = Layout("tri", 3, ((0, 1), (1, 2), (2, 0)), 0)
    parts = spatial_partition(tri)
    # joints 1 and 2 are both 1 hop from the centre: each other's root-part neighbours
    assert parts[0, 1, 2] == pytest.approx(1 / 3) and parts[0, 2, 1] == pytest.approx(1 / 3)


def test_malformed_edges_name_the_file(tmp_path):
    bad = {"name": "x", "num_joints": 3, "edges": [[0, 1, 2]], "center": 0}
    with pytest.raises(ValueError, match="layout file .*layout.json: not a valid layout"):
        get_layout(write(tmp_path, bad))
