"""What downstream evaluation feeds an encoder and reads from it.

Classifier input (docs/design.md): the whole sequence resampled to `frames` frames, a random
crop-and-resize for training (`rng` given) and a deterministic resampling for testing. The
projection head is dropped: kNN and the linear protocol read the pooled backbone features,
with batch-norm statistics recomputed over the training inputs (`precise_batch_norm`).
"""

from __future__ import annotations

import numpy as np
import torch

from mcc.sampling import eval_frames, pad_bodies
from mcc.shards import Sample
from mcc.train import to_model_layout


def batch_inputs(
    samples: list[Sample], frames: int, bodies: int, rng=None, crop_min: float = 0.5
) -> torch.Tensor:
    """The model input (N, C, T, V, M) of `samples`: deterministic, or a random crop with `rng`."""
    arr = np.stack(
        [pad_bodies(eval_frames(s.joints, frames, rng, crop_min), bodies) for s in samples]
    )
    return torch.from_numpy(np.ascontiguousarray(to_model_layout(arr)))


def labels_of(samples: list[Sample]) -> torch.Tensor:
    return torch.tensor([s.label for s in samples], dtype=torch.long)


def device_of(model: torch.nn.Module) -> torch.device:
    """Where a model's parameters are: its inputs go there."""
    return next(model.parameters()).device


@torch.no_grad()
def encode(encoder, samples: list[Sample], frames: int, bodies: int, batch_size: int = 128):
    """Pooled features (N, C') of deterministic classifier inputs, encoder in eval mode, on
    the encoder's device; with a Classifier, its class scores (logits). Computed in fp32."""
    encoder.eval()
    device = device_of(encoder)
    feats = [
        encoder(batch_inputs(samples[i : i + batch_size], frames, bodies).to(device))
        for i in range(0, len(samples), batch_size)
    ]
    return torch.cat(feats)


@torch.no_grad()
def precise_batch_norm(model, samples: list[Sample], frames: int, bodies: int, batch_size: int):
    """Recompute every batch norm's test statistics for the final weights: the average over
    the training samples' deterministic inputs, weights untouched ("precise BN", as in
    PySlowFast). The running averages kept during training (momentum 0.1) lag the weights
    and still carry their initial values after few steps: with 3 labels per class on NATOPS
    (one step per epoch, 30 in all) a model trained from scratch fitted its training
    sequences and then predicted one class for the whole test split in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    step, device = max(2, batch_size), device_of(model)
    for i in range(0, len(samples), step):
        chunk = samples[i : i + step]
        if len(chunk) < 2 and i > 0:
            continue  # a batch norm needs two samples; this one is in no other batch
        model(batch_inputs(chunk, frames, bodies).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
