"""ST-GCN encoder (Yan et al., AAAI 2018) as published, with a width multiplier.

10 blocks of 64, 64, 64, 64, 128, 128, 128, 256, 256, 256 channels (times `width`),
temporal kernel 9, stride 2 at blocks 5 and 8, data batch-norm over (joints x channels),
learnable edge importance, global average pooling over time, joints and the persons present
(zero-padded bodies are skipped).
"""

from __future__ import annotations

import torch
from torch import nn

from mcc.graph import spatial_partition
from mcc.layouts import Layout
from mcc.models.blocks import STBlock, scatter_rows

CHANNELS = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)


def scaled(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


class STGCN(nn.Module):
    """Input (N, C, T, V, M); `forward_features` gives the feature map (N, M, C', T/4, V),
    `forward` the pooled features (N, C')."""

    def __init__(
        self,
        layout: Layout,
        in_channels: int | None = None,
        width: float = 1.0,
        dropout: float = 0.0,
        edge_importance: bool = True,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.in_channels = in_channels or layout.num_channels
        a = torch.from_numpy(spatial_partition(layout))
        self.register_buffer("adjacency", a)
        v = layout.num_joints
        self.data_bn = nn.BatchNorm1d(self.in_channels * v)
        widths = [scaled(c, width) for c in CHANNELS]
        ins = [self.in_channels] + widths[:-1]
        self.blocks = nn.ModuleList(
            STBlock(i, o, a.shape[0], s, dropout=dropout if k else 0.0, residual=k > 0)
            for k, (i, o, s) in enumerate(zip(ins, widths, STRIDES))
        )
        self.edge_importance = nn.ParameterList(
            nn.Parameter(torch.ones_like(a), requires_grad=edge_importance) for _ in self.blocks
        )
        self.out_channels = widths[-1]
        self.time_stride = 4

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        if c != self.in_channels or v != self.layout.num_joints:
            raise ValueError(
                f"ST-GCN on layout {self.layout.name} expects (N, {self.in_channels}, T, "
                f"{self.layout.num_joints}, M) input, got {tuple(x.shape)}"
            )
        present = self.present_bodies(x).reshape(n * m)
        if not present.any():
            present = torch.ones_like(present)
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)[present]
        # Only present bodies go through the network: zero-padded bodies would enter every
        # batch norm's statistics as a constant group (docs/method.md); their features are 0.
        x = self.data_bn(x)
        x = x.view(-1, v, c, t).permute(0, 2, 3, 1).contiguous()  # (bodies, C, T, V)
        for block, importance in zip(self.blocks, self.edge_importance):
            x = block(x, self.adjacency * importance)
        return scatter_rows(x, present).view(n, m, *x.shape[1:])

    @staticmethod
    def present_bodies(x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) input -> (N, M) bool: bodies that are not all zeros (padding)."""
        return x.abs().sum(dim=(1, 2, 3)) > 0

    @staticmethod
    def pool(fmap: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """(N, M, C, T, V) -> (N, C): mean over time and joints, then over the present
        persons (all persons when `present` is None or a sample has none)."""
        per_body = fmap.mean(dim=(3, 4))
        if present is None:
            return per_body.mean(dim=1)
        w = present.to(per_body.dtype)
        w = torch.where(w.sum(dim=1, keepdim=True) > 0, w, torch.ones_like(w))
        return (per_body * w[..., None]).sum(dim=1) / w.sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x), self.present_bodies(x))
