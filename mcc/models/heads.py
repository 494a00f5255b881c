"""Heads on the pooled backbone features (N, C')."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


def projection_head(in_features: int, embed_dim: int) -> nn.Module:
    """MLP to the embedding space where Eq. 1 and 2 are computed; dropped downstream."""
    return nn.Sequential(
        nn.Linear(in_features, in_features),
        nn.ReLU(inplace=True),
        nn.Linear(in_features, embed_dim),
    )


def pretext_head(in_features: int, num_classes: int) -> nn.Module:
    """MLP from the pooled features to the logits of a comparison pretext (Table 4: 6 clip
    orders, 24 jigsaw arrangements, or one class per speed); dropped downstream like the
    projection head."""
    return nn.Sequential(
        nn.Linear(in_features, in_features),
        nn.ReLU(inplace=True),
        nn.Linear(in_features, num_classes),
    )


class ClipOrderHead(nn.Module):
    """VCOP's order head (Xu et al. 2019): the pooled features of S segments in their shuffled
    order (N, S, C') -> every pair i < j concatenated (N, 2C') -> a shared Linear + ReLU ->
    the S(S-1)/2 results concatenated -> logits over the S! orders (6 for S = 3)."""

    def __init__(self, in_features: int, num_segments: int = 3) -> None:
        super().__init__()
        self.pairs = list(itertools.combinations(range(num_segments), 2))
        self.pair = nn.Sequential(nn.Linear(2 * in_features, in_features), nn.ReLU(inplace=True))
        self.fc = nn.Linear(len(self.pairs) * in_features, math.factorial(num_segments))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        h = [self.pair(torch.cat([f[:, i], f[:, j]], dim=1)) for i, j in self.pairs]
        return self.fc(torch.cat(h, dim=1))


class Classifier(nn.Module):
    """Backbone + linear layer on the pooled features: the downstream model.

    `standardize` (linear evaluation of a frozen encoder) puts a batch norm without affine
    parameters between the features and the linear layer, as MAE's linear probe does (He et
    al. 2022): the classifier is still linear in the features, but its training does not
    depend on their scale, which differs by orders of magnitude between encoders (a random
    encoder's features barely vary between samples; docs/method.md, "Downstream: why precise
    batch norm and a standardised linear probe")."""

    def __init__(self, encoder: nn.Module, num_classes: int, standardize: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        # eps far below the smallest feature variance seen (1e-7 at random init); the
        # statistics for testing are the cumulative average over all training batches
        # (momentum None): the frozen features are stationary, and an exponential average
        # would still carry its initial variance of 1 after a short run
        self.norm = nn.BatchNorm1d(encoder.out_channels, affine=False, eps=1e-12,
                                   momentum=None) if standardize else nn.Identity()  # fmt: skip
        self.fc = nn.Linear(encoder.out_channels, num_classes)

    def forward(self, x):
        return self.fc(self.norm(self.encoder(x)))
