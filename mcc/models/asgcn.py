"""AS-GCN encoder (Li et al., CVPR 2019), recognition branch, with a width multiplier.

Each block's actional-structural graph convolution (Sec. 3.4, Eq. 6) sums two terms:
- structural: the fixed stack of the spatial partition (3 parts, order 1) and the S-links of
  orders 2..4 (joints 2, 3 and 4 hops apart, `mcc.graph.structural_links`), each part with
  its own weights W_k and a learned edge-importance mask, as ST-GCN's graph conv;
- actional: lambda * sum_c A_act^c x W_c over the C = 2 A-link types inferred from the
  input by the A-link inference module (AIM, Sec. 3.2), lambda = 0.5, the same links in
  every block (as in the released net/as_gcn.py, which also uses 2 A-link types).

AIM: the NRI encoder (Kipf et al. 2018) that the released code uses: every joint's trajectory
(averaged down to 16 time steps, all channels) -> MLP -> link features Q_ji for every pair
from [p_j, p_i] -> mean of each joint's incoming links -> MLP -> link features again from the
new joint features and the first Q_ji (skip) -> C + 1 link-type logits; a softmax (tau 0.5)
over types, the first type ("no link") dropped. As in the released code each type gets
self-loops and is normalised like the partition (A D^-1, columns summing to 1).

Training the AIM: jointly, with whatever loss trains the encoder (MCC's Eq. 4 in
pretraining, cross-entropy when fine-tuning). The original trains the AIM first, in a stage
of its own, as a variational auto-encoder whose decoder predicts the next poses, then keeps
training it with the classifier. That stage needs its own batches (consecutive frames), its
own loss and its own loop; the MCC step already asks the encoder's features to predict the
clip at another speed (the interpolation decoder, Eq. 3), a motion-prediction signal of the
same kind, and the A-links are differentiable, so one loop trains everything. Without the
variational stage the Gumbel noise of the original's link sampling serves nothing: links
are the soft-max probabilities, which also keeps evaluation deterministic.

The future-pose prediction head is off (MCC's interpolation decoder plays that role). Blocks:
ST-GCN's 10 (the released recognition branch has 9: 3 x 64, 3 x 128, 3 x 256).
4,383,441 parameters at full width with a 60-class head on NTU (25 joints), 172,419 of them
in the AIM. Our count of the released code (4-hop graph, 2 A-link types) is 4,847,892 for
the recognition branch and 6,987,478 with the prediction head (7 more blocks and their edge
importance), the published "6.9 M", its AIM (a separate model) not included. Ours is lower
because the prediction head is off, and because each S-link order is one part (3 partition
+ 3 S-link + 2 A-link parts per block) where the released graph splits every hop into
centripetal and centrifugal parts (9 + 2), which outweighs our tenth block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mcc.graph import structural_links
from mcc.layouts import Layout
from mcc.models.blocks import GraphConv
from mcc.models.encoder import SkeletonEncoder, importance_masks, scaled

AIM_FRAMES = 16  # trajectory length the AIM sees (the original: 50 frames, 150 inputs)


class _MLP(nn.Module):
    """NRI's MLP: Linear-ELU-Linear-ELU-BatchNorm on the last dimension. The first layer's
    input is a concatenation given as separate tensors that broadcast against each other,
    so [p_j, p_i] for all V x V pairs is never built (same parameters as one Linear)."""

    def __init__(self, parts: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.ModuleList(nn.Linear(p, hidden, bias=k == 0) for k, p in enumerate(parts))
        self.fc2 = nn.Linear(hidden, hidden)
        self.bn = nn.BatchNorm1d(hidden)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        h = sum(fc(x) for fc, x in zip(self.fc1, inputs))
        h = F.elu(self.fc2(F.elu(h)))
        return self.bn(h.reshape(-1, h.shape[-1])).view(h.shape)


class LinkInference(nn.Module):
    """The AIM: (B, C, T, V) bodies -> (B, L, V, V) A-links, entry [b, c, j, i] the weight
    of joint j's message to joint i under link type c."""

    def __init__(
        self, in_channels: int, hidden: int, link_types: int = 2, tau: float = 0.5
    ) -> None:
        super().__init__()
        self.tau = tau
        self.trajectory = _MLP((in_channels * AIM_FRAMES,), hidden)  # f_traj
        self.link = _MLP((hidden, hidden), hidden)  # Q_ji from [p_j, p_i]
        self.joint = _MLP((hidden,), hidden)  # joint features from incoming links
        self.link2 = _MLP((hidden, hidden, hidden), hidden)  # [p_j, p_i, Q_ji]
        self.logits = nn.Linear(hidden, link_types + 1)  # type 0: no link

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, v = x.shape
        traj = F.adaptive_avg_pool2d(x, (AIM_FRAMES, v))  # (B, C, F, V)
        p = self.trajectory(traj.permute(0, 3, 1, 2).reshape(b, v, c * AIM_FRAMES))
        q = self.link(p[:, :, None], p[:, None])  # (B, V_j, V_i, H)
        others = 1 - torch.eye(v, dtype=x.dtype, device=x.device)
        incoming = (q * others[..., None]).sum(dim=1) / max(1, v - 1)  # (B, V_i, H)
        p = self.joint(incoming)
        q = self.link2(p[:, :, None], p[:, None], q)
        types = (self.logits(q) / self.tau).softmax(dim=-1)[..., 1:]  # (B, V, V, L)
        links = types.permute(0, 3, 1, 2) * others + torch.eye(v, dtype=x.dtype, device=x.device)
        return links / links.sum(dim=-2, keepdim=True)  # A D^-1 per type


class ActionalStructuralGraphConv(nn.Module):
    """(N, C_in, T, V), the structural stack (K, V, V) and A-links (N, L, V, V) ->
    (N, C_out, T, V): GraphConv over the structural stack + lambda * the A-link term."""

    def __init__(
        self, in_channels: int, out_channels: int, num_parts: int, link_types: int, lam: float
    ) -> None:
        super().__init__()
        self.structural = GraphConv(in_channels, out_channels, num_parts)
        self.actional = nn.Conv2d(in_channels, out_channels * link_types, 1)
        self.link_types, self.lam = link_types, lam

    def forward(
        self, x: torch.Tensor, structural: torch.Tensor, links: torch.Tensor
    ) -> torch.Tensor:
        a = self.actional(x)
        n, lc, t, v = a.shape
        a = a.view(n, self.link_types, lc // self.link_types, t, v)
        act = torch.einsum("nlctv,nlvw->nctw", a, links)
        return self.structural(x, structural) + self.lam * act


class ASGCN(SkeletonEncoder):
    """Input (N, C, T, V, M); `forward_features` gives the feature map (N, M, C', T/4, V),
    `forward` the pooled features (N, C')."""

    name = "AS-GCN"

    def __init__(
        self,
        layout: Layout,
        in_channels: int | None = None,
        width: float = 1.0,
        dropout: float = 0.0,
        edge_importance: bool = True,
        stream: str = "joint",
        s_order: int = 4,
        link_types: int = 2,
        lam: float = 0.5,
    ) -> None:
        super().__init__(layout, in_channels, width, stream)
        s_links = torch.from_numpy(structural_links(layout, s_order))
        self.register_buffer("structural", torch.cat([self.adjacency, s_links]))
        k = self.structural.shape[0]
        self.aim = LinkInference(self.in_channels, scaled(128, width), link_types)
        self.blocks = self.st_blocks(
            k, dropout, lambda i, o: ActionalStructuralGraphConv(i, o, k, link_types, lam)
        )
        self.edge_importance = importance_masks(self.structural, len(self.blocks),
                                                edge_importance)  # fmt: skip

    def body_features(self, x: torch.Tensor) -> torch.Tensor:
        links = self.aim(x)  # inferred once per body, shared by all blocks
        for block, importance in zip(self.blocks, self.edge_importance):
            x = block(x, self.structural * importance, links)
        return x
