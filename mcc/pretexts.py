"""Table 4's comparison pretexts as pretraining models: the backbone of `build_encoder` with a
classification head on its pooled features, trained with cross-entropy.

clip order prediction (Xu et al. 2019): which of the 6 orders of 3 shuffled segments;
jigsaw (Kim et al. 2019, space-time puzzle): which of the 24 arrangements of 2 body regions
x 2 time halves; pace prediction (Wang et al. 2020): which of sampling.speeds.

The views (the clip, its arrangement, the label) come from mcc.sampling (`order_views`,
`jigsaw_views`, `pace_views`) and `mcc.train.training_step` dispatches on cfg.pretext. The
encoder is the attribute `encoder`, as in `MCC`, so a pretext checkpoint evaluates exactly
like an MCC one; the head is dropped downstream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mcc.config import ConfigError, PretrainConfig
from mcc.layouts import Layout
from mcc.models import build_encoder
from mcc.models.heads import ClipOrderHead, pretext_head
from mcc.sampling import CLIP_ORDERS, JIGSAW_ORDERS, pace_classes


def num_pretext_classes(cfg: PretrainConfig) -> int:
    """6 clip orders, 24 jigsaw arrangements, or one class per distinct speed."""
    if cfg.pretext == "order":
        return len(CLIP_ORDERS)
    if cfg.pretext == "jigsaw":
        return len(JIGSAW_ORDERS)
    if cfg.pretext == "pace":
        return len(pace_classes(cfg.sampling.speeds))
    raise ConfigError(f"pretext={cfg.pretext!r} has no classification head")


class PretextModel(nn.Module):
    """Encoder + pretext head: clips (N, C, T, V, M) -> logits (N, classes)."""

    def __init__(self, cfg: PretrainConfig, layout: Layout) -> None:
        super().__init__()
        self.layout = layout
        self.encoder = build_encoder(cfg.model, layout)
        self.segments = 1
        if cfg.pretext == "order":
            self.segments = len(CLIP_ORDERS[0])
            self.head = ClipOrderHead(self.encoder.out_channels, self.segments)
        else:
            self.head = pretext_head(self.encoder.out_channels, num_pretext_classes(cfg))
        self.queue = None  # no memory bank (what the Ray worker's queue check looks for)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.segments == 1:
            return self.head(self.encoder(x))
        # clip order: each segment encoded on its own (N * S, C, T / S, V, M), as in VCOP
        n, c, t, v, m = x.shape
        s, seg = self.segments, t // self.segments
        x = x[:, :, : s * seg].reshape(n, c, s, seg, v, m).transpose(1, 2)
        f = self.encoder(x.reshape(n * s, c, seg, v, m))
        return self.head(f.view(n, s, -1))

    def online_parameters(self):
        """Parameters the optimiser updates."""
        return [p for p in self.parameters() if p.requires_grad]


def pretext_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Cross-entropy of (N, classes) logits against (N,) labels, and the top-1 accuracy (%)."""
    loss = F.cross_entropy(logits, labels)
    acc = 100.0 * (logits.detach().argmax(dim=1) == labels).float().mean().item()
    return loss, acc
