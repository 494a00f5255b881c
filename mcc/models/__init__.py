"""Backbones, the interpolation decoder and heads."""

from mcc.config import ConfigError, ModelConfig
from mcc.layouts import Layout
from mcc.models.agcn import AGCN
from mcc.models.asgcn import ASGCN
from mcc.models.decoder import InterpolationDecoder
from mcc.models.encoder import SkeletonEncoder
from mcc.models.heads import Classifier, projection_head
from mcc.models.stgcn import STGCN


def build_encoder(cfg: ModelConfig, layout: Layout) -> SkeletonEncoder:
    """The backbone named by cfg.backbone on this layout, reading cfg.stream (joint or bone).
    edge_importance applies to ST-GCN and AS-GCN (2s-AGCN's learned B_k takes its place)."""
    if cfg.backbone == "stgcn":
        return STGCN(
            layout,
            width=cfg.width,
            dropout=cfg.dropout,
            edge_importance=cfg.edge_importance,
            stream=cfg.stream,
        )
    if cfg.backbone == "agcn":
        return AGCN(layout, width=cfg.width, dropout=cfg.dropout, stream=cfg.stream)
    if cfg.backbone == "asgcn":
        return ASGCN(
            layout,
            width=cfg.width,
            dropout=cfg.dropout,
            edge_importance=cfg.edge_importance,
            stream=cfg.stream,
        )
    raise ConfigError(
        f"model.backbone={cfg.backbone!r} is not available; choose stgcn, agcn or asgcn"
    )


__all__ = [
    "STGCN",
    "AGCN",
    "ASGCN",
    "SkeletonEncoder",
    "InterpolationDecoder",
    "Classifier",
    "projection_head",
    "build_encoder",
]
