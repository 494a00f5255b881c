"""The three backbones (ST-GCN, 2s-AGCN, AS-GCN), the joint and bone streams, and late fusion
of evaluation runs."""

import json

import numpy as np
import pytest
import torch
from conftest import NATOPS_LAYOUT
from test_train import TINY as TRAIN_TINY

from mcc.cli import main as cli_main
from mcc.config import ModelConfig, PretrainConfig, apply_overrides
from mcc.evaluate import evaluate
from mcc.fusion import fuse, load_scores, save_scores
from mcc.graph import bone_matrix, structural_links
from mcc.layouts import KINECT20, NTU25, OPENPOSE18, Layout, get_layout
from mcc.models import AGCN, ASGCN, STGCN, Classifier, InterpolationDecoder, build_encoder
from mcc.train import pretrain

LAYOUTS = [NTU25, KINECT20, OPENPOSE18, get_layout(str(NATOPS_LAYOUT))]
BACKBONES = ["stgcn", "agcn", "asgcn"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one thread is ~50x faster than torch's
    default when other processes load the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small(backbone: str, layout: Layout, stream: str = "joint"):
    return build_encoder(ModelConfig(backbone=backbone, stream=stream, width=0.125), layout)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: x.name)
@pytest.mark.parametrize("stream", ["joint", "bone"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_on_every_layout_stream_and_body_count(backbone, stream, layout):
    torch.manual_seed(0)
    enc = small(backbone, layout, stream)
    assert enc.time_stride == 4 and enc.adjacency.shape == (3, layout.num_joints, layout.num_joints)
    coords = len(layout.coord_channels)
    dec = InterpolationDecoder(enc.adjacency, enc.out_channels, 8, 64, coords)
    for bodies in (1, 2):
        x = torch.randn(3, layout.num_channels, 32, layout.num_joints, bodies)
        fmap = enc.forward_features(x)
        assert fmap.shape == (3, bodies, enc.out_channels, 8, layout.num_joints)
        assert enc.pool(fmap, enc.present_bodies(x)).shape == (3, enc.out_channels)
        assert dec(fmap).shape == (3, coords, 64, layout.num_joints, bodies)
        assert torch.isfinite(fmap).all()


@pytest.mark.parametrize("stream", ["joint", "bone"])
@pytest.mark.parametrize("backbone", ["agcn", "asgcn"])
def test_zero_padded_bodies_stay_out_of_the_network(backbone, stream):
    """As for ST-GCN (test_models.py): a padded second body changes neither the features nor
    the batch-norm statistics, in training mode."""
    torch.manual_seed(0)
    enc = small(backbone, NTU25, stream).train()
    one = torch.randn(4, 3, 32, 25, 1)
    padded = torch.cat([one, torch.zeros_like(one)], dim=4)
    torch.testing.assert_close(enc(padded), enc(one))
    assert enc.forward_features(padded)[:, 1].abs().sum() == 0


def count(encoder) -> int:
    return sum(p.numel() for p in Classifier(encoder, 60).parameters())


def test_full_width_parameter_counts():
    assert count(STGCN(NTU25)) == 3_098_832  # full width, 60 classes
    # the released 2s-AGCN has 3,469,510 ("3.47 M"); see agcn.py for the 2,966 difference
    assert count(AGCN(NTU25)) == 3_466_544
    assert count(AGCN(NTU25, stream="bone")) == 3_466_544  # the bone map is not a weight
    # AS-GCN without its prediction head (asgcn.py): 4.38 M, 0.17 M of it in the AIM
    asgcn = ASGCN(NTU25)
    assert count(asgcn) == 4_383_441
    assert sum(p.numel() for p in asgcn.aim.parameters()) == 172_419
    assert AGCN(NTU25, width=0.25).out_channels == ASGCN(NTU25, width=0.25).out_channels == 64


def test_bone_checkpoints_hold_no_bone_buffer():
    assert "bones" not in STGCN(NTU25, width=0.125, stream="bone").state_dict()


def chain3(channels=("x", "y", "z"), center: int = 0) -> Layout:
    return Layout("chain3", 3, ((0, 1), (1, 2)), center, channels)


def test_bone_vectors_on_a_chain():
    joints = torch.tensor([[1.0, 2.0, 3.0], [4.0, 6.0, 9.0], [0.0, 1.0, 1.0]])  # (V, xyz)
    b = torch.from_numpy(bone_matrix(chain3()))
    expect = torch.stack([torch.zeros(3), joints[1] - joints[0], joints[2] - joints[1]])
    torch.testing.assert_close(b.T @ joints, expect)
    # centre in the middle: both ends point to it, the centre's bone is zero
    b = torch.from_numpy(bone_matrix(chain3(center=1)))
    expect = torch.stack([joints[0] - joints[1], torch.zeros(3), joints[2] - joints[1]])
    torch.testing.assert_close(b.T @ joints, expect)


def test_bone_stream_maps_coordinates_and_passes_the_score_through():
    layout = chain3(("x", "y", "score"))
    enc = STGCN(layout, width=0.125, stream="bone")
    x = torch.randn(2, 3, 5, 3, 2)  # (N, C, T, V, M)
    out = enc.to_stream(x)
    torch.testing.assert_close(out[:, 2], x[:, 2])  # score unchanged
    torch.testing.assert_close(out[:, :2, :, 0], torch.zeros_like(out[:, :2, :, 0]))
    torch.testing.assert_close(out[:, :2, :, 1], x[:, :2, :, 1] - x[:, :2, :, 0])
    torch.testing.assert_close(out[:, :2, :, 2], x[:, :2, :, 2] - x[:, :2, :, 1])
    assert STGCN(layout, width=0.125).to_stream(x) is x  # joint stream: untouched


def test_structural_links_are_the_hop_rings():
    s = structural_links(get_layout("ntu25"), 4)
    assert s.shape == (3, 25, 25)
    # joint 0 (spine base) to 20 (spine shoulder) is 2 hops: an order-2 link, column-normalised
    assert s[0, 0, 20] > 0 and s[1, 0, 20] == 0 and s[0, 20, 20] == 0
    assert np.allclose(s.sum(axis=1), 1)  # every joint has neighbours 2, 3 and 4 hops away
    assert structural_links(chain3(), 4)[1:].sum() == 0  # past the chain's diameter


def test_aim_links_are_normalised_per_type():
    enc = ASGCN(NTU25, width=0.125).eval()
    links = enc.aim(torch.randn(2, 3, 32, 25))
    assert links.shape == (2, 2, 25, 25)
    torch.testing.assert_close(links.sum(dim=-2), torch.ones(2, 2, 25))


TINY = {**TRAIN_TINY, "optim.epochs": "2", "loss.nce": "0"}  # test_train's tiny run


@pytest.mark.parametrize("backbone, stream", [("agcn", "bone"), ("asgcn", "joint")])
def test_two_epoch_pretraining_lowers_the_loss(tiny_data, tmp_path, backbone, stream):
    over = {**TINY, "data.path": tiny_data, "model.backbone": backbone, "model.stream": stream}
    pretrain(apply_overrides(PretrainConfig(), over), tmp_path / "run", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["loss"] < rows[0]["loss"], rows


def test_evaluation_saves_scores_that_fuse(tiny_data, tmp_path):
    from mcc.config import EvalConfig

    def run(stream: str):
        cfg = apply_overrides(
            EvalConfig(),
            {"data.path": tiny_data, "model.backbone": "agcn", "model.stream": stream,
             "model.width": "0.125", "optim.epochs": "1", "optim.batch_size": "8",
             "frames": "32", "threads": "1", "protocol": "linear"},
        )  # fmt: skip
        return evaluate(cfg, None, tmp_path / stream, progress=False)

    joint, bone = run("joint"), run("bone")
    s = load_scores(tmp_path / "joint")
    assert s["scores"].shape == (16, 4) and len(s["sample_ids"]) == 16
    top1 = 100 * float((s["scores"].argmax(1) == s["labels"]).mean())
    assert top1 == pytest.approx(joint["top1"])
    assert cli_main(["fuse", str(tmp_path / "joint"), str(tmp_path / "bone"),
                     "--out", str(tmp_path / "fused")]) == 0  # fmt: skip
    fused = json.loads((tmp_path / "fused" / "result.json").read_text())
    assert fused["kind"] == "fuse" and fused["test_samples"] == 16
    assert [r["top1"] for r in fused["runs"]] == pytest.approx([joint["top1"], bone["top1"]])


def write_run(folder, scores, labels, ids):
    folder.mkdir()
    save_scores(folder, torch.tensor(scores), torch.tensor(labels), ids)
    return folder


def test_fuse_sums_scores(tmp_path):
    labels = [0, 1, 2, 1]
    # each run alone gets 2 of 4 right; their sum gets 3 (s3 stays wrong)
    a = write_run(
        tmp_path / "a",
        [[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.0, 0.2, 0.8], [0.5, 0.0, 0.5]],
        labels,
        ["s0", "s1", "s2", "s3"],
    )
    # the same samples in another order: fuse aligns them by id
    b = write_run(
        tmp_path / "b",
        [[0.0, 0.7, 0.3], [0.0, 0.0, 0.5], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]],
        [1, 0, 1, 2],
        ["s3", "s0", "s1", "s2"],
    )
    res = fuse([a, b], tmp_path / "ab")
    assert res["top1"] == 75.0 and res["top5"] == 100.0
    assert [r["top1"] for r in res["runs"]] == [50.0, 50.0]
    assert load_scores(tmp_path / "ab")["scores"].shape == (4, 3)


def test_fuse_refuses_mismatched_ids(tmp_path):
    a = write_run(tmp_path / "a", [[1.0, 0.0], [0.0, 1.0]], [0, 1], ["s0", "s1"])
    b = write_run(tmp_path / "b", [[1.0, 0.0], [0.0, 1.0]], [0, 1], ["s0", "s9"])
    with pytest.raises(ValueError, match="test sample ids differ"):
        fuse([a, b], tmp_path / "ab")
    with pytest.raises(FileNotFoundError, match="scores.npz"):
        fuse([a, tmp_path], tmp_path / "ab")
    assert cli_main(["fuse", str(a), str(b), "--out", str(tmp_path / "c")]) == 2
