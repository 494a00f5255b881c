"""ST-GCN encoder (Yan et al., AAAI 2018) as published, with a width multiplier.

10 blocks of 64, 64, 64, 64, 128, 128, 128, 256, 256, 256 channels (times `width`),
temporal kernel 9, stride 2 at blocks 5 and 8, data batch-norm over (joints x channels),
learnable edge importance, global average pooling over time, joints and the persons present
(zero-padded bodies are skipped). 3,098,832 parameters at full width with a 60-class head.
"""

from __future__ import annotations

import torch

from mcc.layouts import Layout
from mcc.models.encoder import SkeletonEncoder, importance_masks


class STGCN(SkeletonEncoder):
    """Input (N, C, T, V, M); `forward_features` gives the feature map (N, M, C', T/4, V),
    `forward` the pooled features (N, C'). Each block's graph convolution mixes joints over
    the fixed spatial partition (3, V, V) times that block's edge importance."""

    name = "ST-GCN"

    def __init__(
        self,
        layout: Layout,
        in_channels: int | None = None,
        width: float = 1.0,
        dropout: float = 0.0,
        edge_importance: bool = True,
        stream: str = "joint",
    ) -> None:
        super().__init__(layout, in_channels, width, stream)
        a = self.adjacency
        self.blocks = self.st_blocks(a.shape[0], dropout, lambda i, o: None)
        self.edge_importance = importance_masks(a, len(self.blocks), edge_importance)

    def body_features(self, x: torch.Tensor) -> torch.Tensor:
        for block, importance in zip(self.blocks, self.edge_importance):
            x = block(x, self.adjacency * importance)
        return x
