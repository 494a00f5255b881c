"""Heads on the pooled backbone features (N, C')."""

from __future__ import annotations

from torch import nn


def projection_head(in_features: int, embed_dim: int) -> nn.Module:
    """MLP to the embedding space where Eq. 1 and 2 are computed; dropped downstream."""
    return nn.Sequential(
        nn.Linear(in_features, in_features),
        nn.ReLU(inplace=True),
        nn.Linear(in_features, embed_dim),
    )


class Classifier(nn.Module):
    """Backbone + linear layer on the pooled features: the downstream model."""

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(encoder.out_channels, num_classes)

    def forward(self, x):
        return self.fc(self.encoder(x))
