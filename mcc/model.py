"""The MCC pretraining model: online encoder + projection head, momentum key encoder + head
and the memory queue for Eq. 2, and the interpolation decoder for Eq. 3.

Parts whose loss weight is 0 are not built, so they cost neither compute nor memory.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mcc.config import PretrainConfig
from mcc.layouts import Layout
from mcc.losses import MemoryQueue
from mcc.models import InterpolationDecoder, build_encoder, projection_head


class MCC(nn.Module):
    def __init__(self, cfg: PretrainConfig, layout: Layout) -> None:
        super().__init__()
        self.layout = layout
        self.encoder = build_encoder(cfg.model, layout)
        self.head = projection_head(self.encoder.out_channels, cfg.model.embed_dim)
        self.key_encoder = self.key_head = self.queue = None
        if cfg.loss.nce > 0:
            self.key_encoder = copy.deepcopy(self.encoder)
            self.key_head = copy.deepcopy(self.head)
            for p in [*self.key_encoder.parameters(), *self.key_head.parameters()]:
                p.requires_grad_(False)
            gen = torch.Generator().manual_seed(cfg.seed)
            self.queue = MemoryQueue(cfg.loss.queue_size, cfg.model.embed_dim, gen)
        self.decoder = None
        if cfg.loss.interp > 0:
            clip = cfg.sampling.clip_len
            out_frames = (
                clip if cfg.loss.interp_target == "reconstruct" else clip * cfg.loss.interp_rate
            )
            self.decoder = InterpolationDecoder(
                self.encoder.adjacency,
                self.encoder.out_channels,
                in_frames=-(-clip // self.encoder.time_stride),
                out_frames=out_frames,
                out_channels=len(layout.coord_channels),
            )

    def forward(self, x: torch.Tensor, n_decode: int = 0):
        """Online path on a stack of clips (N, C, T, V, M): embeddings (N, D) and, for the first
        n_decode clips, the decoder's prediction (n_decode, C_coord, T', V, M)."""
        fmap = self.encoder.forward_features(x)
        present = self.encoder.present_bodies(x)
        z = self.head(self.encoder.pool(fmap, present))
        pred = self.decoder(fmap[:n_decode], present[:n_decode]) if n_decode else None
        return z, pred

    def online_parameters(self):
        """Parameters the optimiser updates (never the key encoder's)."""
        return [
            p for n, p in self.named_parameters() if not n.startswith("key_") and p.requires_grad
        ]

    @torch.no_grad()
    def momentum_update(self, m: float) -> None:
        """key <- m * key + (1 - m) * online (MoCo); buffers (BN statistics) are copied."""
        for online, key in ((self.encoder, self.key_encoder), (self.head, self.key_head)):
            for po, pk in zip(online.parameters(), key.parameters()):
                pk.mul_(m).add_(po.detach(), alpha=1 - m)
            for bo, bk in zip(online.buffers(), key.buffers()):
                bk.copy_(bo)

    def key_embed(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.key_head(self.key_encoder(x))
