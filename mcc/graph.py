"""Graph helpers derived from a layout's edge list (pure NumPy).

The ST-GCN spatial partition (Yan et al. 2018, Sec. 3.6): each joint's 1-hop neighbourhood
splits into the root itself, centripetal neighbours (nearer the centre joint) and
centrifugal neighbours (farther), giving K = 3 adjacency matrices.
"""

from __future__ import annotations

import numpy as np

from mcc.layouts import Layout


def hop_distance(layout: Layout, max_hop: int | None = None) -> np.ndarray:
    """(V, V) shortest-path hop counts; np.inf between unconnected joints (or beyond max_hop)."""
    v = layout.num_joints
    dist = np.full((v, v), np.inf)
    np.fill_diagonal(dist, 0)
    adj = np.zeros((v, v), dtype=bool)
    for i, j in layout.edges:
        adj[i, j] = adj[j, i] = True
    frontier = np.eye(v, dtype=bool)
    reached = frontier.copy()
    hop = 0
    while frontier.any() and (max_hop is None or hop < max_hop):
        hop += 1
        nxt = (frontier.astype(np.int64) @ adj.astype(np.int64) > 0) & ~reached
        dist[nxt] = hop
        reached |= nxt
        frontier = nxt
    return dist


def normalize_digraph(a: np.ndarray) -> np.ndarray:
    """A @ D^-1 with D the column degrees (ST-GCN's normalisation)."""
    deg = a.sum(axis=0)
    inv = np.where(deg > 0, 1.0 / np.where(deg > 0, deg, 1), 0.0)
    return a * inv[None, :]


def spatial_partition(layout: Layout) -> np.ndarray:
    """(3, V, V) float32: root, centripetal, centrifugal parts of the normalised 1-hop graph.

    Entry [k, j, i] weights joint j's contribution to joint i (ST-GCN's convention, used as
    out[..., i] = sum_j x[..., j] * A[k, j, i]). Joints not connected to the centre count
    as being at the same distance as each other (they land in the root part).
    """
    hop = hop_distance(layout, max_hop=1)
    a = normalize_digraph((hop <= 1).astype(np.float64))
    to_center = hop_distance(layout)[:, layout.center]
    to_center = np.where(np.isinf(to_center), -1, to_center)
    v = layout.num_joints
    parts = np.zeros((3, v, v))
    for i in range(v):
        for j in range(v):
            if hop[j, i] > 1:
                continue
            if to_center[j] == to_center[i]:
                parts[0, j, i] = a[j, i]
            elif to_center[j] > to_center[i]:
                parts[1, j, i] = a[j, i]
            else:
                parts[2, j, i] = a[j, i]
    return parts.astype(np.float32)


def parents(layout: Layout) -> np.ndarray:
    """(V,) parent of each joint: its neighbour nearer the centre; the centre (and joints not
    connected to it) are their own parent."""
    to_center = hop_distance(layout)[:, layout.center]
    out = np.arange(layout.num_joints)
    for i, j in layout.edges:
        if to_center[i] == to_center[j] + 1:
            out[i] = j
        elif to_center[j] == to_center[i] + 1:
            out[j] = i
    return out


def bone_matrix(layout: Layout) -> np.ndarray:
    """(V, V) float32 map from joints to bones (2s-AGCN's bone stream, Shi et al. 2019):
    bones[..., w] = sum_v joints[..., v] * B[v, w] = joints[w] - joints[parent(w)].

    The parent is the neighbour nearer the centre (`parents`); the centre, and joints not
    connected to it, are their own parent and get a zero bone. Apply it to coordinate
    channels only (a confidence score is not a position).
    """
    v = layout.num_joints
    out = np.eye(v)
    par = parents(layout)
    out[par, np.arange(v)] -= 1.0  # column w: e_w - e_parent(w); zero when parent(w) == w
    return out.astype(np.float32)


def structural_links(layout: Layout, max_order: int = 4) -> np.ndarray:
    """(max_order - 1, V, V) float32: AS-GCN's S-links of orders 2..max_order (Li et al.
    2019, Sec. 3.3), each normalised like the partition (A D^-1).

    Order l joins joints exactly l hops apart: the links that the l-th power of the
    adjacency adds to the lower ones (Li et al.'s released graph builds them by hop
    distance too). Order 1 is the partition graph itself (`spatial_partition`). Orders past
    the skeleton's diameter are all zeros.
    """
    hop = hop_distance(layout, max_hop=max_order)
    orders = range(2, max_order + 1)
    parts = [normalize_digraph((hop == order).astype(np.float64)) for order in orders]
    v = layout.num_joints
    return np.stack(parts).astype(np.float32) if parts else np.zeros((0, v, v), np.float32)
