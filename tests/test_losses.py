"""Losses of Eq. 1-4 and the memory queue (docs/design.md, "Losses and the training step")."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mcc.losses import MemoryQueue, info_nce, interpolation_loss, total_loss, triplet_loss


def unit(*xs: float) -> torch.Tensor:
    v = torch.tensor(xs, dtype=torch.float64)
    return v / v.norm()


# --- InfoNCE ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.5, 0.07])
def test_info_nce_all_equal_gives_log_k_plus_one(tau):
    k_size = 16
    v = F.normalize(torch.randn(1, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    q = torch.cat([v, v * 3.0])  # scale must not matter
    k = torch.cat([v * 0.5, v])
    queue = v.repeat(k_size, 1)
    loss = info_nce(q, k, queue, tau=tau)
    assert loss.item() == pytest.approx(math.log(k_size + 1), abs=1e-5)


def test_info_nce_matches_hand_computation():
    g = torch.Generator().manual_seed(1)
    q, k, queue = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g), None
    queue = F.normalize(torch.randn(5, 4, generator=g), dim=1)
    tau = 0.3
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    expected = 0.0
    for n in range(3):
        logits = torch.cat([(qn[n] * kn[n]).sum()[None], queue @ qn[n]]) / tau
        expected += -(logits[0] - torch.logsumexp(logits, 0))
    expected /= 3
    assert info_nce(q, k, queue, tau=tau).item() == pytest.approx(expected.item(), abs=1e-6)


def test_info_nce_positive_far_from_negatives_is_small():
    q = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[-1.0, 0.0]] * 4)
    loss = info_nce(q, q.clone(), queue, tau=0.5)
    expected = math.log(1 + 4 * math.exp(-2 / 0.5))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_info_nce_masks_own_ids():
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(2, 6, generator=g), torch.randn(2, 6, generator=g)
    queue = F.normalize(torch.randn(10, 6, generator=g), dim=1)
    queue_ids = torch.tensor([7, 3, -1, 7, 5, 3, 3, -1, 9, 7])
    sample_ids = torch.tensor([7, 3])
    masked = info_nce(q, k, queue, 0.5, queue_ids, sample_ids)
    per_sample = [
        info_nce(q[n : n + 1], k[n : n + 1], queue[queue_ids != sample_ids[n]], 0.5)
        for n in range(2)
    ]
    expected = (per_sample[0] + per_sample[1]) / 2
    assert masked.item() == pytest.approx(expected.item(), abs=1e-6)
    unmasked = info_nce(q, k, queue, 0.5)
    assert masked.item() != pytest.approx(unmasked.item(), abs=1e-4)
    # ids that match nothing change nothing
    none = info_nce(q, k, queue, 0.5, queue_ids, torch.tensor([100, 101]))
    assert none.item() == pytest.approx(unmasked.item(), abs=1e-7)


def test_info_nce_masking_needs_both_ids():
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)
    queue = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    ids = torch.zeros(6, dtype=torch.long)
    a = info_nce(q, k, queue, 0.5, queue_ids=ids)
    b = info_nce(q, k, queue, 0.5)
    assert a.item() == pytest.approx(b.item(), abs=1e-7)


def test_info_nce_gradient_flows_to_q_and_k():
    g = torch.Generator().manual_seed(4)
    q = torch.randn(2, 4, generator=g, requires_grad=True)
    k = torch.randn(2, 4, generator=g, requires_grad=True)
    queue = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    info_nce(q, k, queue).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


# --- triplet ----------------------------------------------------------------------------------


def test_triplet_zero_when_positive_much_closer():
    x_i = unit(1, 0)[None]
    x_j = unit(1, 0.01)[None]
    x_k = unit(-1, 0)[None]  # d_neg = 2
    assert triplet_loss(x_i, x_j, x_k, 0.15).item() == 0.0


def test_triplet_exact_value_when_positive_farther():
    x_i = unit(1, 0)
    x_j = unit(0, 1)  # d_pos = sqrt(2)
    x_k = unit(1, 1)  # d_neg = |(1,0) - (1,1)/sqrt2|
    d_pos = (x_i - x_j).norm().item()
    d_neg = (x_i - x_k).norm().item()
    assert d_pos > d_neg
    loss = triplet_loss(x_i[None], x_j[None], x_k[None], margin=0.15)
    assert loss.item() == pytest.approx(max(0.0, d_pos - d_neg + 0.15), abs=1e-9)
    assert loss.item() == pytest.approx(math.sqrt(2) - math.sqrt(2 - math.sqrt(2)) + 0.15)


def test_triplet_within_margin():
    # d_pos < d_neg but by less than the margin: a positive loss below the margin
    x_i, x_j, x_k = unit(1, 0), unit(1, 0.1), unit(1, 0.2)
    d_pos, d_neg = (x_i - x_j).norm().item(), (x_i - x_k).norm().item()
    assert d_pos < d_neg < d_pos + 0.15
    loss = triplet_loss(x_i[None], x_j[None], x_k[None], margin=0.15).item()
    assert loss == pytest.approx(d_pos - d_neg + 0.15, abs=1e-9)
    assert 0 < loss < 0.15


def test_triplet_normalises_and_averages():
    x_i = torch.stack([unit(1, 0), unit(1, 0)]) * torch.tensor([[2.0], [5.0]], dtype=torch.float64)
    x_j = torch.stack([unit(0, 1), unit(1, 0.01)]) * 3
    x_k = torch.stack([unit(1, 1), unit(-1, 0)]) * 0.1
    first = math.sqrt(2) - math.sqrt(2 - math.sqrt(2)) + 0.15
    loss = triplet_loss(x_i, x_j, x_k, margin=0.15)
    assert loss.item() == pytest.approx(first / 2, abs=1e-9)


def test_triplet_without_positive():
    x_i = unit(1, 0)[None]
    close = unit(1, 0.05)[None]
    far = unit(0, 1)[None]
    d_close = (x_i - close).norm().item()
    assert triplet_loss(x_i, None, close, 0.15).item() == pytest.approx(0.15 - d_close)
    assert triplet_loss(x_i, None, far, 0.15).item() == 0.0


# --- memory queue -----------------------------------------------------------------------------


def test_queue_initial_state():
    q = MemoryQueue(7, 4, generator=torch.Generator().manual_seed(0))
    assert q.size == 7
    assert q.keys.shape == (7, 4)
    torch.testing.assert_close(q.keys.norm(dim=1), torch.ones(7))
    assert q.ids.tolist() == [-1] * 7
    assert q.ptr.item() == 0
    assert {n for n, _ in q.named_buffers()} == {"keys", "ids", "ptr"}


def test_queue_seeded():
    a = MemoryQueue(5, 3, generator=torch.Generator().manual_seed(1))
    b = MemoryQueue(5, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.keys, b.keys)


def test_queue_wrap_around_order():
    q = MemoryQueue(5, 2, generator=torch.Generator().manual_seed(0))
    batches = []
    for b in range(3):
        keys = torch.tensor([[float(2 * b + 1), 0.0], [0.0, float(2 * b + 2)]])
        ids = torch.tensor([2 * b, 2 * b + 1])
        q.enqueue(keys, ids)
        batches.append(keys)
        assert q.ptr.item() == [2, 4, 1][b]
    # slots 0,1 / 2,3 / 4,0: the last batch's second key overwrote slot 0
    assert q.ids.tolist() == [5, 1, 2, 3, 4]
    expected = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    torch.testing.assert_close(q.keys, expected)  # stored normalised


def test_queue_large_runs_and_pointer():
    q = MemoryQueue(6536, 8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    for step in range(200):
        q.enqueue(torch.randn(64, 8, generator=g), torch.arange(step * 64, step * 64 + 64))
    assert q.ptr.item() == (200 * 64) % 6536 == 6264
    # the newest 64 keys sit just before the pointer, FIFO order with wrap-around
    last = torch.arange(199 * 64, 200 * 64)
    assert torch.equal(q.ids[6264 - 64 : 6264], last)
    # every slot was written: ids are the most recent sample to land there
    assert (q.ids >= 0).all()
    assert q.ids.max().item() == 200 * 64 - 1
    assert q.ids.min().item() == 200 * 64 - 6536
    torch.testing.assert_close(q.keys.norm(dim=1), torch.ones(6536))


def test_queue_full_size_batch_and_too_large():
    q = MemoryQueue(4, 2)
    q.enqueue(torch.ones(4, 2), torch.arange(4))
    assert q.ptr.item() == 0 and q.ids.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="5"):
        q.enqueue(torch.ones(5, 2), torch.arange(5))
    assert q.ids.tolist() == [0, 1, 2, 3]  # unchanged


def test_queue_does_not_keep_graph():
    q = MemoryQueue(4, 2)
    k = torch.randn(2, 2, requires_grad=True)
    q.enqueue(k * 2, torch.arange(2))
    assert not q.keys.requires_grad


# --- interpolation ----------------------------------------------------------------------------


def test_interpolation_loss_value():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 3, 8, 5, 2, generator=g)
    target = torch.randn(2, 3, 8, 5, 2, generator=g)
    n, c, t, v, m = pred.shape
    total = 0.0
    for a in range(n):
        for b in range(t):
            for d in range(v):
                for e in range(m):
                    total += ((pred[a, :, b, d, e] - target[a, :, b, d, e]) ** 2).sum().item()
    expected = total / (n * t * v * m)
    assert interpolation_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_interpolation_loss_simple():
    pred = torch.zeros(1, 2, 2, 1, 1)
    target = torch.zeros(1, 2, 2, 1, 1)
    target[0, :, 0, 0, 0] = torch.tensor([3.0, 4.0])  # frame 0: squared distance 25
    assert interpolation_loss(pred, target).item() == pytest.approx(12.5)
    assert interpolation_loss(target, target).item() == 0.0


def test_interpolation_loss_shape_mismatch():
    with pytest.raises(ValueError, match="interpolation"):
        interpolation_loss(torch.zeros(1, 3, 64, 5, 2), torch.zeros(1, 3, 32, 5, 2))


# --- total ------------------------------------------------------------------------------------


def test_total_loss_weights():
    terms = {"triplet": torch.tensor(2.0), "nce": torch.tensor(3.0), "interp": torch.tensor(5.0)}
    out = total_loss(terms, {"triplet": 1.0, "nce": 0.5, "interp": 2.0})
    assert out.item() == pytest.approx(2.0 + 1.5 + 10.0)
    # only the computed terms enter; extra weights are ignored
    out = total_loss({"nce": torch.tensor(3.0)}, {"triplet": 1.0, "nce": 0.1, "interp": 1.0})
    assert out.item() == pytest.approx(0.3)


def test_total_loss_gradients_scale():
    x = torch.tensor(1.0, requires_grad=True)
    total_loss({"triplet": x * 2, "nce": x * 3}, {"triplet": 0.5, "nce": 2.0}).backward()
    assert x.grad.item() == pytest.approx(0.5 * 2 + 2.0 * 3)
