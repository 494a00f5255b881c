"""The losses of Eq. 1-4 and the memory bank of Eq. 2.

Embeddings are (N, D) and are L2-normalised here. The paper prints Eq. 1 and Eq. 2 with sign
slips; Eq. 1 is used in its standard form and Eq. 2 with cosine similarity, as MoCo does
(docs/design.md, "Losses and the training step").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def triplet_loss(
    x_i: torch.Tensor, x_j: torch.Tensor | None, x_k: torch.Tensor, margin: float = 0.15
) -> torch.Tensor:
    """Eq. 1, standard sign: mean of max(0, d(x_i, x_j) - d(x_i, x_k) + gamma), with d the L2
    distance between normalised embeddings. x_j=None is Table 2's "no positive" row:
    max(0, gamma - d(x_i, x_k))."""
    x_i, x_k = F.normalize(x_i, dim=1), F.normalize(x_k, dim=1)
    d_neg = (x_i - x_k).norm(dim=1)
    d_pos = 0.0 if x_j is None else (x_i - F.normalize(x_j, dim=1)).norm(dim=1)
    return F.relu(d_pos - d_neg + margin).mean()


class MemoryQueue(nn.Module):
    """FIFO bank of K normalised keys with the ids of the samples they came from.

    It starts as random unit vectors with id -1 and changes only through `enqueue`, which
    writes a batch at the pointer and wraps around, so K need not be a multiple of the batch.
    """

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        keys = F.normalize(torch.randn(size, dim, generator=generator), dim=1)
        self.register_buffer("keys", keys)
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, ids: torch.Tensor) -> None:
        n = keys.shape[0]
        if n > self.size:
            raise ValueError(
                f"cannot enqueue {n} keys into a queue of {self.size}: K must be >= batch"
            )
        slots = (self.ptr + torch.arange(n, device=keys.device)) % self.size
        self.keys[slots] = F.normalize(keys.detach().to(self.keys.dtype), dim=1)
        self.ids[slots] = ids.to(self.ids.device)
        self.ptr.copy_((self.ptr + n) % self.size)


def info_nce(
    q: torch.Tensor,
    k: torch.Tensor,
    queue_keys: torch.Tensor,
    tau: float = 0.5,
    queue_ids: torch.Tensor | None = None,
    sample_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 2 as MoCo: logits = cosine / tau, the positive key at index 0, the queue as
    negatives. A sample's own stale keys in the queue (same id) are masked out."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue_keys.t().to(q.dtype)
    if queue_ids is not None and sample_ids is not None:
        same = sample_ids[:, None].to(queue_ids.device) == queue_ids[None, :]
        l_neg = l_neg.masked_fill(same, float("-inf"))
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels)


def interpolation_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 3: squared L2 over coordinates, averaged over joints and frames (and persons,
    samples). pred and target are (N, C, T', V, M) with coordinate channels only."""
    if pred.shape != target.shape:
        raise ValueError(
            f"interpolation: prediction {tuple(pred.shape)} vs target {tuple(target.shape)}"
        )
    return (pred - target).pow(2).sum(dim=1).mean()


def total_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Eq. 4: sum of lambda * term over the computed terms."""
    return sum(weights[name] * value for name, value in terms.items())
