"""2s-AGCN encoder (Shi et al., CVPR 2019), one stream, with a width multiplier.

The adaptive graph convolution (Sec. 3.2, Eq. 3) replaces ST-GCN's fixed graph by
A_k + B_k + C_k for each of the K = 3 parts of the spatial partition:
- A_k, the layout's fixed partition (the encoder's `adjacency`);
- B_k, a free (V, V) matrix per block, learned, initialised at 1e-6 as in the original;
- C_k, a graph for each sample: the embedded similarity of every joint pair,
  theta_k(x_j) . phi_k(x_i) over channels and frames, soft-maxed over the source joints j
  (1x1-conv embeddings of out/4 channels, the original's coff_embedding = 4).
The original's per-unit residual (`down`, a 1x1 conv + BN where the width changes) is kept.

The blocks are ST-GCN's (shared `STBlock`: temporal conv unit, residual, 10 blocks of
64..256 channels, strides 2 at blocks 5 and 8, data batch-norm). One difference from the
released code: its unit_gcn normalises the graph branch, adds `down(x)` and applies ReLU
before a Conv-BN temporal unit; here the shared temporal unit's leading BN-ReLU does that
after the addition. No edge importance (B_k plays its role). 3,466,544 parameters at full
width with a 60-class head on NTU (25 joints); the released model (model/agcn.py) has
3,469,510, the "3.47 M" usually quoted: its data batch-norm spans both persons (+150) and
each part's W_k has its own bias (+2 * C_out per block).

Joint or bone stream: `stream` (SkeletonEncoder); the two streams are separate models whose
test-set class scores are summed (`mcc.fusion.fuse`).
"""

from __future__ import annotations

import torch
from torch import nn

from mcc.layouts import Layout
from mcc.models.encoder import SkeletonEncoder


class AdaptiveGraphConv(nn.Module):
    """(N, C_in, T, V) and the partition (K, V, V) -> (N, C_out, T, V):
    sum_k W_k x (A_k + B_k + C_k) + down(x)."""

    def __init__(
        self, in_channels: int, out_channels: int, num_parts: int, num_joints: int
    ) -> None:
        super().__init__()
        self.num_parts = num_parts
        self.embed = max(1, out_channels // 4)
        self.b = nn.Parameter(torch.full((num_parts, num_joints, num_joints), 1e-6))
        self.theta = nn.Conv2d(in_channels, self.embed * num_parts, 1)
        self.phi = nn.Conv2d(in_channels, self.embed * num_parts, 1)
        # W_k for all parts at once: sum_k W_k y_k == one 1x1 conv over the K stacked y_k
        self.conv = nn.Conv2d(in_channels * num_parts, out_channels, 1)
        if in_channels == out_channels:
            self.down = nn.Identity()
        else:
            self.down = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels)
            )

    def data_graph(self, x: torch.Tensor) -> torch.Tensor:
        """C_k: (N, C, T, V) -> (N, K, V, V), entry [n, k, j, i] = softmax over j of
        theta_k(x_j) . phi_k(x_i) / (embed * T)."""
        n, _, t, v = x.shape
        theta = self.theta(x).view(n, self.num_parts, self.embed * t, v)
        phi = self.phi(x).view(n, self.num_parts, self.embed * t, v)
        sim = torch.einsum("nkej,nkei->nkji", theta, phi) / (self.embed * t)
        return sim.softmax(dim=-2)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        graph = adjacency + self.b + self.data_graph(x)  # (N, K, V, V)
        y = torch.einsum("nctj,nkji->nkcti", x, graph).reshape(n, self.num_parts * c, t, v)
        return self.conv(y) + self.down(x)


class AGCN(SkeletonEncoder):
    """Input (N, C, T, V, M); `forward_features` gives the feature map (N, M, C', T/4, V),
    `forward` the pooled features (N, C')."""

    name = "2s-AGCN"

    def __init__(
        self,
        layout: Layout,
        in_channels: int | None = None,
        width: float = 1.0,
        dropout: float = 0.0,
        stream: str = "joint",
    ) -> None:
        super().__init__(layout, in_channels, width, stream)
        k, v, _ = self.adjacency.shape
        self.blocks = self.st_blocks(k, dropout, lambda i, o: AdaptiveGraphConv(i, o, k, v))

    def body_features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, self.adjacency)
        return x
