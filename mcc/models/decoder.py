"""The interpolation decoder of Sec. 3.2 (Fig. 3).

4 spatial-temporal conv blocks on the encoder's feature map, then a temporal transposed
convolution that upsamples its T/4 steps (8 for a 32-frame clip) to the target length
(32 * l frames, or 32 for Table 3's direct reconstruction), predicting coordinates only.
"""

from __future__ import annotations

import torch
from torch import nn

from mcc.models.blocks import STBlock, scatter_rows


class InterpolationDecoder(nn.Module):
    """(N, M, C', T', V) feature map -> (N, C_out, out_frames, V, M)."""

    def __init__(
        self,
        adjacency: torch.Tensor,
        in_channels: int,
        in_frames: int,
        out_frames: int,
        out_channels: int,
    ) -> None:
        super().__init__()
        if out_frames % in_frames:
            raise ValueError(
                f"decoder: {out_frames} output frames is not a multiple of the encoder's "
                f"{in_frames} time steps (clip_len must be a multiple of 4)"
            )
        self.register_buffer("adjacency", adjacency.clone())
        k = adjacency.shape[0]
        c1, c2 = max(4, in_channels // 2), max(4, in_channels // 4)
        self.blocks = nn.ModuleList(
            [
                STBlock(in_channels, c1, k),
                STBlock(c1, c1, k),
                STBlock(c1, c2, k),
                STBlock(c2, c2, k),
            ]
        )
        factor = out_frames // in_frames
        self.upsample = nn.ConvTranspose2d(c2, out_channels, (factor, 1), (factor, 1))
        self.in_frames, self.out_frames = in_frames, out_frames

    def forward(self, fmap: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """present (N, M) bool: decode only those bodies (absent ones predict 0), so that
        padding stays out of the batch-norm statistics, as in the encoder."""
        n, m, c, t, v = fmap.shape
        if t != self.in_frames:
            raise ValueError(f"decoder expects {self.in_frames} time steps, got {t}")
        keep = torch.ones(n * m, dtype=torch.bool, device=fmap.device)
        if present is not None and present.any():
            keep = present.reshape(n * m)
        x = fmap.reshape(n * m, c, t, v)[keep]
        for block in self.blocks:
            x = block(x, self.adjacency)
        x = self.upsample(x)  # (bodies, C_out, out_frames, V)
        out = scatter_rows(x, keep)
        return out.view(n, m, *x.shape[1:]).permute(0, 2, 3, 4, 1).contiguous()
