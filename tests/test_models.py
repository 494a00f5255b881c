import pytest
import torch
from conftest import NATOPS_LAYOUT

from mcc.config import PretrainConfig, apply_overrides
from mcc.layouts import NTU25, OPENPOSE18, get_layout
from mcc.model import MCC
from mcc.models import STGCN, Classifier, InterpolationDecoder

NATOPS = str(NATOPS_LAYOUT)


@pytest.mark.parametrize("layout", [NTU25, OPENPOSE18, get_layout(NATOPS)], ids=lambda x: x.name)
@pytest.mark.parametrize("bodies", [1, 2])
def test_encoder_and_decoder_shapes(layout, bodies):
    enc = STGCN(layout, width=0.125)
    x = torch.randn(3, layout.num_channels, 32, layout.num_joints, bodies)
    fmap = enc.forward_features(x)
    assert fmap.shape == (3, bodies, enc.out_channels, 8, layout.num_joints)
    assert enc(x).shape == (3, enc.out_channels)
    coords = len(layout.coord_channels)
    for out_frames in (32, 64, 128):
        dec = InterpolationDecoder(enc.adjacency, enc.out_channels, 8, out_frames, coords)
        assert dec(fmap).shape == (3, coords, out_frames, layout.num_joints, bodies)


def test_full_stgcn_has_about_3_1m_parameters():
    n = sum(p.numel() for p in Classifier(STGCN(NTU25), 60).parameters())
    assert 3.0e6 < n < 3.2e6, n


def test_width_multiplier_scales_channels():
    assert STGCN(NTU25).out_channels == 256
    assert STGCN(NTU25, width=0.25).out_channels == 64


def test_wrong_input_shape_is_a_clear_error():
    enc = STGCN(NTU25, width=0.125)
    with pytest.raises(ValueError, match=r"expects \(N, 3, T, 25, M\)"):
        enc(torch.randn(2, 3, 32, 18, 1))


def test_decoder_rejects_non_multiple_length():
    enc = STGCN(NTU25, width=0.125)
    with pytest.raises(ValueError, match="not a multiple"):
        InterpolationDecoder(enc.adjacency, enc.out_channels, 8, 60, 3)


def test_mcc_builds_only_weighted_parts():
    base = {"model.width": "0.125", "loss.queue_size": "64"}
    full = MCC(apply_overrides(PretrainConfig(), base), NTU25)
    assert full.key_encoder is not None and full.decoder is not None and full.queue.size == 64
    no_nce = MCC(apply_overrides(PretrainConfig(), {**base, "loss.nce": "0"}), NTU25)
    assert no_nce.key_encoder is None and no_nce.queue is None
    no_interp = MCC(apply_overrides(PretrainConfig(), {**base, "loss.interp": "0"}), NTU25)
    assert no_interp.decoder is None
    # the key encoder is never among the optimised parameters
    names = {id(p) for p in full.key_encoder.parameters()}
    assert not names & {id(p) for p in full.online_parameters()}


def test_zero_padded_bodies_stay_out_of_the_network():
    """A padded (all-zero) second body changes neither the features nor the batch-norm
    statistics: the pooled features equal those of the one-body input, in training mode."""
    torch.manual_seed(0)
    enc = STGCN(NTU25, width=0.125)
    one = torch.randn(4, 3, 32, 25, 1)
    padded = torch.cat([one, torch.zeros_like(one)], dim=4)
    enc.train()
    torch.testing.assert_close(enc(padded), enc(one))
    fmap = enc.forward_features(padded)
    assert fmap[:, 1].abs().sum() == 0
