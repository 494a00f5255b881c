"""What the three backbones (ST-GCN, 2s-AGCN, AS-GCN) share: the channel plan, the input
check, the joint or bone stream, skipping zero-padded bodies, data batch-norm, the block
stack and pooling.

A backbone subclasses `SkeletonEncoder` and implements `body_features`, which maps the
bodies present, (B, C, T, V) after data batch-norm, to (B, C', T/4, V).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mcc.graph import bone_matrix, spatial_partition
from mcc.layouts import Layout
from mcc.models.blocks import STBlock, scatter_rows

# ST-GCN's 10 blocks (Yan et al. 2018, Sec. 3.7), reused by 2s-AGCN and, here, AS-GCN.
CHANNELS = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
STREAMS = ("joint", "bone")


def scaled(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


def importance_masks(adjacency: torch.Tensor, n: int, trainable: bool) -> nn.ParameterList:
    """ST-GCN's learnable edge importance: one mask per block, shaped like `adjacency`,
    multiplied with it elementwise (all ones, frozen, when not `trainable`)."""
    return nn.ParameterList(
        nn.Parameter(torch.ones_like(adjacency), requires_grad=trainable) for _ in range(n)
    )


class SkeletonEncoder(nn.Module):
    """Input (N, C, T, V, M); `forward_features` gives the feature map (N, M, C', T/4, V),
    `forward` the pooled features (N, C').

    stream: "joint" feeds the coordinates as they are; "bone" feeds the bone vectors
    x[v] - x[parent(v)] (2s-AGCN's second stream, Shi et al. 2019) on the coordinate
    channels, other channels (OpenPose's score) unchanged. The map is applied here, inside
    the encoder, so that sampling, the Ray Data path and the MCC interpolation target (which
    stays in joint coordinates: the decoder learns to predict joints from bone features) are
    the same for both streams. Bodies are judged present or padded on the joint input.

    `adjacency` (3, V, V) is the layout's spatial partition, the graph the interpolation
    decoder uses whatever the backbone.
    """

    name = "encoder"

    def __init__(
        self,
        layout: Layout,
        in_channels: int | None = None,
        width: float = 1.0,
        stream: str = "joint",
    ) -> None:
        super().__init__()
        if stream not in STREAMS:
            raise ValueError(f"stream={stream!r}: choose one of {STREAMS}")
        self.layout = layout
        self.in_channels = in_channels or layout.num_channels
        self.stream = stream
        self.register_buffer("adjacency", torch.from_numpy(spatial_partition(layout)))
        if stream == "bone":  # a fixed map, not a weight: kept out of checkpoints
            self.register_buffer("bones", torch.from_numpy(bone_matrix(layout)), persistent=False)
        self.coords = [c for c in layout.coord_channels if c < self.in_channels]
        self.data_bn = nn.BatchNorm1d(self.in_channels * layout.num_joints)
        self.widths = [scaled(c, width) for c in CHANNELS]
        self.out_channels = self.widths[-1]
        self.time_stride = 4

    def st_blocks(
        self, num_parts: int, dropout: float, gcn: Callable[[int, int], nn.Module | None]
    ) -> nn.ModuleList:
        """The 10 `STBlock`s of the channel plan; `gcn(in, out)` gives each block's graph
        convolution (None: ST-GCN's). No residual and no dropout in the first block."""
        ins = [self.in_channels] + self.widths[:-1]
        return nn.ModuleList(
            STBlock(i, o, num_parts, s, dropout=dropout if k else 0.0, residual=k > 0,
                    gcn=gcn(i, o))
            for k, (i, o, s) in enumerate(zip(ins, self.widths, STRIDES))
        )  # fmt: skip

    def body_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, V) bodies present, after data batch-norm -> (B, C', T/4, V)."""
        raise NotImplementedError

    def to_stream(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) joints -> the same shape in this encoder's stream."""
        if self.stream == "joint":
            return x
        out = x.clone()
        out[:, self.coords] = torch.einsum("nctvm,vw->nctwm", x[:, self.coords], self.bones)
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        if c != self.in_channels or v != self.layout.num_joints:
            raise ValueError(
                f"{self.name} on layout {self.layout.name} expects (N, {self.in_channels}, T, "
                f"{self.layout.num_joints}, M) input, got {tuple(x.shape)}"
            )
        present = self.present_bodies(x).reshape(n * m)
        if not present.any():
            present = torch.ones_like(present)
        x = self.to_stream(x).permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)[present]
        # Only present bodies go through the network: zero-padded bodies would enter every
        # batch norm's statistics as a constant group (docs/method.md); their features are 0.
        x = self.data_bn(x)
        x = x.view(-1, v, c, t).permute(0, 2, 3, 1).contiguous()  # (bodies, C, T, V)
        x = self.body_features(x)
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
