"""Backbones, the interpolation decoder and heads."""

from mcc.config import ConfigError, ModelConfig
from mcc.layouts import Layout
from mcc.models.decoder import InterpolationDecoder
from mcc.models.heads import Classifier, projection_head
from mcc.models.stgcn import STGCN


def build_encoder(cfg: ModelConfig, layout: Layout) -> STGCN:
    """The backbone named by cfg.backbone on this layout."""
    if cfg.backbone == "stgcn":
        return STGCN(
            layout, width=cfg.width, dropout=cfg.dropout, edge_importance=cfg.edge_importance
        )
    raise ConfigError(f"model.backbone={cfg.backbone!r} is not available; choose stgcn")


__all__ = ["STGCN", "InterpolationDecoder", "Classifier", "projection_head", "build_encoder"]
