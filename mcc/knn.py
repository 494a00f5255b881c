"""kNN evaluation on frozen features, and the accuracy of any class scores."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from mcc.config import EvalConfig
from mcc.features import encode, labels_of, precise_batch_norm
from mcc.shards import Sample


def knn_scores(
    train_f, train_y, test_f, k: int, num_classes: int, chunk: int = 4096
) -> torch.Tensor:
    """Cosine kNN: each test sample's class scores are the summed similarities of its k
    nearest training samples in each class. Computed where the features are (the bank on
    the GPU of a GPU run), `chunk` test samples at a time so that the similarities of a
    large split never sit in memory at once; the scores are returned on the CPU."""
    bank = F.normalize(train_f, dim=1).t()
    bank_y = train_y.to(train_f.device)
    k = min(k, train_f.shape[0])
    out = []
    for part in F.normalize(test_f, dim=1).split(chunk):
        top, idx = (part @ bank).topk(k, dim=1)
        scores = torch.zeros(part.shape[0], num_classes, device=part.device, dtype=top.dtype)
        out.append(scores.scatter_add_(1, bank_y[idx], top).cpu())
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def accuracy(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """top-1, top-5 (%), per-class accuracy and the confusion matrix (rows: true class)."""
    pred = scores.argmax(dim=1)
    top5 = scores.topk(min(5, scores.shape[1]), dim=1).indices
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    conf.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class = (conf.diag().float() / conf.sum(1).clamp(min=1)).mul(100).tolist()
    return {
        "top1": 100.0 * (pred == labels).float().mean().item(),
        "top5": 100.0 * (top5 == labels[:, None]).any(dim=1).float().mean().item(),
        "per_class_top1": [round(x, 2) for x in per_class],
        "confusion": conf.tolist(),
    }


def knn_test_scores(
    encoder, train: list[Sample], test: list[Sample], cfg: EvalConfig, bodies: int,
    num_classes: int,
) -> torch.Tensor:  # fmt: skip
    """(len(test), num_classes) kNN class scores of `test` with `train` as the bank.

    The features come from a copy of the encoder whose batch-norm statistics are recomputed
    over the bank's inputs (`precise_batch_norm`; no labels used); the caller's encoder is
    left as it is. Computed on the encoder's device; the scores are on the CPU."""
    encoder = copy.deepcopy(encoder)
    precise_batch_norm(encoder, train, cfg.frames, bodies, cfg.optim.batch_size)
    train_f = encode(encoder, train, cfg.frames, bodies)
    test_f = encode(encoder, test, cfg.frames, bodies)
    return knn_scores(train_f, labels_of(train), test_f, cfg.knn_k, num_classes)


def knn(
    encoder, train: list[Sample], test: list[Sample], cfg: EvalConfig, bodies: int,
    num_classes: int,
) -> dict:  # fmt: skip
    """kNN accuracy of `test` against the bank `train` (see `knn_test_scores`)."""
    scores = knn_test_scores(encoder, train, test, cfg, bodies, num_classes)
    return accuracy(scores, labels_of(test), num_classes)
