"""Building blocks shared by the backbones and the decoder (ST-GCN, Yan et al. 2018).

Shapes: features are (N, C, T, V); an adjacency stack is (K, V, V) with entry [k, j, i] the
weight of joint j's message to joint i (per-sample graphs are (N, K, V, V), same convention).

All three backbones use `STBlock` (graph conv, `TemporalConv`, residual, ReLU); they differ
only in the graph convolution they put in it: ST-GCN's `GraphConv` over a fixed partition,
2s-AGCN's adaptive one (agcn.py), AS-GCN's actional-structural one (asgcn.py).
"""

from __future__ import annotations

import torch
from torch import nn


class GraphConv(nn.Module):
    """Spatial graph convolution: a 1x1 conv to K groups of channels, each mixed over joints
    by one adjacency part and summed (ST-GCN's ConvTemporalGraphical, temporal kernel 1)."""

    def __init__(self, in_channels: int, out_channels: int, num_parts: int) -> None:
        super().__init__()
        self.num_parts = num_parts
        self.conv = nn.Conv2d(in_channels, out_channels * num_parts, kernel_size=1)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        n, kc, t, v = x.shape
        x = x.view(n, self.num_parts, kc // self.num_parts, t, v)
        return torch.einsum("nkctv,kvw->nctw", x, adjacency).contiguous()


class TemporalConv(nn.Module):
    """BN-ReLU-Conv(kernel x 1, stride)-BN-Dropout over time, as in ST-GCN's tcn."""

    def __init__(
        self, channels: int, kernel: int = 9, stride: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0)),
            nn.BatchNorm2d(channels),
            nn.Dropout(dropout, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class STBlock(nn.Module):
    """One spatial-temporal block: graph conv, temporal conv, residual, ReLU.

    `gcn` is any module mapping (N, in_channels, T, V) and the block's graph arguments to
    (N, out_channels, T, V); None builds ST-GCN's `GraphConv` over `num_parts` parts.
    forward(x, *graph) passes `graph` (an adjacency stack, plus per-sample links for AS-GCN)
    to it unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_parts: int,
        stride: int = 1,
        kernel: int = 9,
        dropout: float = 0.0,
        residual: bool = True,
        gcn: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.gcn = gcn if gcn is not None else GraphConv(in_channels, out_channels, num_parts)
        self.tcn = TemporalConv(out_channels, kernel, stride, dropout)
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, (stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, *graph: torch.Tensor) -> torch.Tensor:
        res = 0 if self.residual is None else self.residual(x)
        return self.relu(self.tcn(self.gcn(x, *graph)) + res)


def scatter_rows(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Put the rows computed for `keep` (bool, len R) back into R rows, zeros elsewhere:
    zero-padded bodies skip the network and get zero outputs."""
    out = x.new_zeros(keep.shape[0], *x.shape[1:])
    out[keep] = x
    return out
