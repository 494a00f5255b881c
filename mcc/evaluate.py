"""Downstream evaluation of an encoder: kNN and a linear classifier on pooled features, and
fine-tuning.

Classifier input (design.md): the whole sequence resampled to cfg.frames frames, a random
crop-and-resize for training and a deterministic resampling for testing. The projection
head is dropped; kNN and linear evaluation use the pooled backbone features. Linear
evaluation and fine-tuning share one classifier-training loop (`train_classifier`); linear
freezes the encoder's weights, and kNN and linear read it with batch-norm statistics
recomputed over the training inputs (`precise_batch_norm`).

Protocols: knn, linear, finetune (all labels, or label_fraction of each class), semi
(finetune on a seeded per-class fraction 0 < label_fraction < 1, Table 5) and transfer
(finetune, on this dataset, a checkpoint trained on another one: Tables 6, 7). The
fine-tuning protocols save the trained encoder as the run's checkpoint.pt (kind `finetune`),
which `--checkpoint` accepts like a pretraining one: Table 7's "fully supervised" row is a
finetune on the source dataset, then transfer from that run to the target.

Every evaluation run also saves its test-set class scores (`scores.npz`: scores, labels,
sample ids), so that separately trained models can be fused by summing their scores
(`fuse`; 2s-AGCN's joint + bone streams, Shi et al. 2019).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mcc.checkpoint import (
    CheckpointError,
    check_state_dict,
    config_of,
    load_checkpoint,
    load_module,
    save_checkpoint,
)
from mcc.config import ConfigError, DataConfig, EvalConfig, ModelConfig, PretrainConfig, to_dict
from mcc.data import load_splits, per_class_subset
from mcc.layouts import Layout, layout_from_dict
from mcc.models import Classifier, SkeletonEncoder, build_encoder
from mcc.runs import RunDir
from mcc.sampling import eval_frames, pad_bodies
from mcc.shards import Sample, read_manifest
from mcc.train import (
    _log_scalars,
    _progress,
    _tensorboard,
    make_optimizer,
    seed_everything,
    to_model_layout,
)

FINETUNED = ("finetune", "semi", "transfer")  # protocols that train the encoder and save it


def load_pretrained_encoder(path: str | Path) -> tuple[SkeletonEncoder, ModelConfig, dict]:
    """The encoder of a checkpoint (see `encoder_of`), with its model config and layout."""
    state = load_checkpoint(path)
    encoder, model_cfg = encoder_of(state)
    return encoder, model_cfg, state["layout"]


def encoder_of(state: dict) -> tuple[SkeletonEncoder, ModelConfig]:
    """The encoder a loaded checkpoint holds under `encoder.`, and its model config: a
    pretraining run's online encoder (MCC or a comparison pretext), or a fine-tuned
    classifier's encoder (kind `finetune`, written by the fine-tuning protocols)."""
    cls = EvalConfig if state["kind"] == "finetune" else PretrainConfig
    model_cfg = config_of(state, cls).model
    layout = layout_from_dict(state["layout"])
    prefix = "encoder."
    sub = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
    what = f"encoder of {state['path']}"
    with torch.device("meta"):  # shapes only: a crafted config cannot make us allocate
        check_state_dict(build_encoder(model_cfg, layout), sub, what)
    encoder = build_encoder(model_cfg, layout)
    load_module(encoder, sub, what)
    return encoder, model_cfg


def check_layout(trained: dict, layout: Layout, checkpoint, data_path) -> None:
    """An encoder runs on another dataset only with the same joints, channels and edges (its
    graph and input layer are built from them); the layouts' names may differ."""
    own = layout_from_dict(trained)
    if (own.num_joints, own.channels, _edge_set(own)) != (
        layout.num_joints,
        layout.channels,
        _edge_set(layout),
    ):
        raise CheckpointError(
            f"checkpoint {checkpoint} was trained on layout {own.name!r} ({_describe(own)}); "
            f"dataset {data_path} uses {layout.name!r} ({_describe(layout)}): the encoder "
            f"needs the same joints, channels and edges"
        )


def _edge_set(layout: Layout) -> set[frozenset]:
    return {frozenset(e) for e in layout.edges}


def _describe(layout: Layout) -> str:
    return (
        f"{layout.num_joints} joints, channels {','.join(layout.channels)}, "
        f"{len(layout.edges)} edges"
    )


def check_backbone(asked: ModelConfig, trained: ModelConfig, checkpoint) -> None:
    """A checkpoint brings its own model config; a model.backbone (or model.stream) set to
    something else than the default and the checkpoint's is a mistake, not a request."""
    default = ModelConfig()
    for key in ("backbone", "stream"):
        a, t = getattr(asked, key, None), getattr(trained, key, None)
        if a != t and a != getattr(default, key, None):
            raise ConfigError(
                f"checkpoint {checkpoint} holds a model.{key}={t!r} encoder, but the config "
                f"asks for model.{key}={a!r}: drop that --set or use a {a!r} checkpoint"
            )


def check_normalize(data: DataConfig, state: dict, checkpoint) -> None:
    """The encoder reads sequences normalised the way it was trained on: a different
    data.normalize feeds it inputs it never saw (NW-UCLA kNN: 43.3 % read with the
    pretraining's center-align, 28.7 % with center)."""
    trained = state["config"].get("data", {}).get("normalize")
    if trained is not None and trained != data.normalize:
        raise ConfigError(
            f"checkpoint {checkpoint} was trained on data.normalize={trained}; evaluate with "
            f"--set data.normalize={trained} (now {data.normalize})"
        )


def source_of(state: dict) -> dict:
    """Where a checkpoint's encoder was trained: its data.path and that dataset's name (the
    checkpoint's own record, else the manifest if it is still there)."""
    path = state["config"].get("data", {}).get("path")
    name = state.get("dataset")
    if name is None and path:
        try:
            name = read_manifest(path).name
        except (FileNotFoundError, ValueError, KeyError):
            name = None
    return {"source_data": path, "source_dataset": name}


def semi_subset(
    samples: list[Sample], fraction: float, seed: int, classes: list[str]
) -> list[Sample]:
    """The labelled set of the semi-supervised protocol (design.md): per class, round(fraction
    * class count) training samples, at least 1, seeded (`per_class_subset`). Every class of
    the dataset must have a training sample, and fine-tuning needs two samples in all."""
    counts = np.bincount([s.label for s in samples], minlength=len(classes))
    short = [c for c in range(len(classes)) if counts[c] < 1]
    if short:
        c = short[0]
        raise ConfigError(
            f"protocol=semi, label_fraction={fraction}: class {c} ({classes[c]!r}) has "
            f"{counts[c]} training samples; the fraction needs at least 1 of every class "
            f"({len(short)} class(es) short)"
        )
    chosen = per_class_subset(samples, fraction, seed, "label_fraction")
    if len(chosen) < 2:
        raise ConfigError(
            f"protocol=semi, label_fraction={fraction} keeps {len(chosen)} training sample; "
            f"fine-tuning needs at least 2 (batch norm): raise label_fraction"
        )
    return chosen


def batch_inputs(
    samples: list[Sample], frames: int, bodies: int, rng=None, crop_min: float = 0.5
) -> torch.Tensor:
    arr = np.stack(
        [pad_bodies(eval_frames(s.joints, frames, rng, crop_min), bodies) for s in samples]
    )
    return torch.from_numpy(np.ascontiguousarray(to_model_layout(arr)))


@torch.no_grad()
def encode(encoder, samples: list[Sample], frames: int, bodies: int, batch_size: int = 128):
    """Pooled features (N, C') of deterministic classifier inputs, encoder in eval mode."""
    encoder.eval()
    feats = [
        encoder(batch_inputs(samples[i : i + batch_size], frames, bodies))
        for i in range(0, len(samples), batch_size)
    ]
    return torch.cat(feats)


def knn_scores(train_f, train_y, test_f, k: int, num_classes: int) -> torch.Tensor:
    """Cosine kNN: each test sample's class scores are the summed similarities of its k
    nearest training samples in each class."""
    sim = F.normalize(test_f, dim=1) @ F.normalize(train_f, dim=1).t()
    k = min(k, train_f.shape[0])
    top, idx = sim.topk(k, dim=1)
    scores = torch.zeros(test_f.shape[0], num_classes)
    scores.scatter_add_(1, train_y[idx], top)
    return scores


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


def labels_of(samples: list[Sample]) -> torch.Tensor:
    return torch.tensor([s.label for s in samples], dtype=torch.long)


def knn_test_scores(encoder, train, test, cfg: EvalConfig, bodies: int, num_classes: int):
    """(len(test), num_classes) kNN class scores of `test` with `train` as the bank.

    The features come from a copy of the encoder whose batch-norm statistics are recomputed
    over the bank's inputs (`precise_batch_norm`; no labels used); the caller's encoder is
    left as it is."""
    encoder = copy.deepcopy(encoder)
    precise_batch_norm(encoder, train, cfg.frames, bodies, cfg.optim.batch_size)
    train_f = encode(encoder, train, cfg.frames, bodies)
    test_f = encode(encoder, test, cfg.frames, bodies)
    return knn_scores(train_f, labels_of(train), test_f, cfg.knn_k, num_classes)


def knn(encoder, train, test, cfg: EvalConfig, bodies: int, num_classes: int) -> dict:
    scores = knn_test_scores(encoder, train, test, cfg, bodies, num_classes)
    return accuracy(scores, labels_of(test), num_classes)


@torch.no_grad()
def predict(model, samples: list[Sample], frames: int, bodies: int, batch_size: int = 128):
    """Class scores (logits, (N, classes)) of deterministic classifier inputs, eval mode."""
    model.eval()
    return torch.cat(
        [
            model(batch_inputs(samples[i : i + batch_size], frames, bodies))
            for i in range(0, len(samples), batch_size)
        ]
    )


def train_classifier(
    encoder,
    train,
    test,
    cfg: EvalConfig,
    bodies: int,
    num_classes: int,
    run: RunDir | None = None,
    progress: bool = True,
    frozen: bool = False,
) -> dict:
    """Train a linear classifier on the encoder's pooled features on `train`, with the encoder
    (fine-tuning) or with the encoder frozen (linear evaluation), then score `test`."""
    model = fit_classifier(encoder, train, cfg, bodies, num_classes, run, progress, frozen)
    return accuracy(predict(model, test, cfg.frames, bodies), labels_of(test), num_classes)


def fit_classifier(
    encoder,
    train,
    cfg: EvalConfig,
    bodies: int,
    num_classes: int,
    run: RunDir | None = None,
    progress: bool = True,
    frozen: bool = False,
) -> Classifier:
    """The training half of `train_classifier`: the trained Classifier (encoder + fc)."""
    head = None
    if not frozen and cfg.head_init == "probe" and cfg.optim.epochs > 0:
        # LP-FT: first the linear protocol on a frozen copy (the same run as `--protocol
        # linear` with these settings), then everything from its layer
        probe = fit_classifier(copy.deepcopy(encoder), train, cfg, bodies, num_classes,
                               None, progress, frozen=True)  # fmt: skip
        head = folded_head(probe)
    if frozen:  # the frozen encoder's statistics, as knn's: over the training inputs
        precise_batch_norm(encoder, train, cfg.frames, bodies, cfg.optim.batch_size)
    model = Classifier(encoder, num_classes, standardize=frozen)
    if head is not None:
        model.fc.load_state_dict(head)
    encoder.requires_grad_(not frozen)
    params = model.fc.parameters() if frozen else model.parameters()
    optim = dataclasses.replace(cfg.optim, lr=cfg.linear_lr) if (
        frozen and cfg.linear_lr > 0) else cfg.optim  # fmt: skip
    opt, sched = make_optimizer(params, optim)
    name = "linear" if frozen else "finetune"
    bs = cfg.optim.batch_size
    # run/tb/ as pretraining writes (mcc.train), when tensorboard is installed (extra `tb`)
    tb = _tensorboard(run.path) if run is not None else None
    for epoch in range(cfg.optim.epochs):
        rng = np.random.default_rng([cfg.seed, epoch, 1])
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        order = rng.permutation(len(train))
        model.train()
        if frozen:
            encoder.eval()  # frozen batch-norm statistics too
        t0, total, correct, seen = time.time(), 0.0, 0, 0
        steps = range(0, len(train) - (len(train) % bs if len(train) > bs else 0), bs)
        for i in _progress(steps, len(steps), f"{name} {epoch + 1}/{cfg.optim.epochs}", progress):
            chunk = [train[j] for j in order[i : i + bs]]
            if len(chunk) < 2:
                continue  # batch norm needs two samples
            x = batch_inputs(chunk, cfg.frames, bodies, rng, cfg.crop_min)
            y = torch.tensor([s.label for s in chunk])
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(chunk)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(chunk)
        sched.step()
        if run is not None:
            last = {
                "epoch": epoch,
                "loss": total / max(1, seen),
                "train_top1": 100.0 * correct / max(1, seen),
                "lr": opt.param_groups[0]["lr"],
                "epoch_time_s": round(time.time() - t0, 3),
            }
            run.log(last)
            _log_scalars(tb, name, last)
    if tb is not None:
        tb.close()
    if not frozen and cfg.optim.epochs > 0:  # 0 epochs: the model as it came
        precise_batch_norm(model, train, cfg.frames, bodies, bs)
    return model


@torch.no_grad()
def folded_head(probe: Classifier) -> dict:
    """The linear layer of a linear-protocol Classifier with its feature standardisation
    folded in: fc(x) == probe.fc(probe.norm(x)) for pooled features x, so that it can head a
    Classifier without one (`head_init=probe`)."""
    norm, fc = probe.norm, probe.fc
    scale = torch.rsqrt(norm.running_var + norm.eps)
    weight = fc.weight * scale
    return {"weight": weight, "bias": fc.bias - weight @ norm.running_mean}


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
    step = max(2, batch_size)
    for i in range(0, len(samples), step):
        chunk = samples[i : i + step]
        if len(chunk) < 2 and i > 0:
            continue  # a batch norm needs two samples; this one is in no other batch
        model(batch_inputs(chunk, frames, bodies))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def evaluate(
    cfg: EvalConfig, checkpoint: str | None, out: str | Path, progress: bool = True
) -> dict:
    """Run cfg.protocol with the encoder of `checkpoint` (None: random init, the
    "w/o pre-training" row) on cfg.data; train on the training split (or its labelled
    fraction), report on the test split (cfg.scored="val": on the data.val_fraction carve of
    the training split, which is then left out of the training data). Writes the run folder
    `out`."""
    if cfg.protocol == "transfer" and not checkpoint:
        raise ConfigError(
            "protocol=transfer fine-tunes a checkpoint trained on another dataset: pass "
            "--checkpoint (a pretraining run, or a finetune run for the fully supervised row)"
        )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data)
    manifest = splits.manifest
    if cfg.scored == "val":
        if not splits.val:
            raise ConfigError(
                f"scored=val scores the validation carve of the training split: set "
                f"data.val_fraction (e.g. 0.2); it is {cfg.data.val_fraction}"
            )
        splits = dataclasses.replace(splits, test=splits.val)
    if not splits.test:
        raise ConfigError(f"dataset {cfg.data.path} has no 'test' split to evaluate on")
    unlabelled = [s for s in splits.train + splits.test if not 0 <= s.label < len(manifest.classes)]
    if unlabelled:
        raise ConfigError(
            f"dataset {cfg.data.path} is not labelled for evaluation: {len(unlabelled)} "
            f"sample(s) have no class among its {len(manifest.classes)}, e.g. "
            f"{unlabelled[0].sample_id} (label {unlabelled[0].label})"
        )
    source = {}
    if checkpoint:
        state = load_checkpoint(checkpoint)
        check_layout(state["layout"], manifest.layout, checkpoint, cfg.data.path)
        encoder, model_cfg = encoder_of(state)
        check_backbone(cfg.model, model_cfg, checkpoint)
        check_normalize(cfg.data, state, checkpoint)
        layout_json, source = state["layout"], source_of(state)
    else:
        model_cfg = cfg.model
        encoder = build_encoder(model_cfg, manifest.layout)
        layout_json = manifest.layout.to_json()
    train = splits.train
    if cfg.protocol == "semi":
        train = semi_subset(train, cfg.label_fraction, cfg.seed, manifest.classes)
    elif cfg.label_fraction < 1:
        train = per_class_subset(train, cfg.label_fraction, cfg.seed, "label_fraction")
    run = RunDir(out)
    run.write_config({**to_dict(cfg), "model": to_dict(model_cfg), "checkpoint": checkpoint})
    if run.metrics_file.exists():
        run.metrics_file.unlink()
    bodies, n_cls = manifest.max_bodies, len(manifest.classes)
    if cfg.protocol == "knn":
        scores = knn_test_scores(encoder, train, splits.test, cfg, bodies, n_cls)
    else:
        frozen = cfg.protocol == "linear"
        model = fit_classifier(encoder, train, cfg, bodies, n_cls, run, progress, frozen)
        scores = predict(model, splits.test, cfg.frames, bodies)
        if cfg.protocol in FINETUNED:  # the trained encoder, for `--checkpoint` (Table 7)
            save_checkpoint(
                run.checkpoint,
                {
                    "kind": "finetune",
                    "config": to_dict(dataclasses.replace(cfg, model=model_cfg)),
                    "layout": layout_json,
                    "max_bodies": bodies,
                    "epoch": cfg.optim.epochs - 1,
                    "model": model.state_dict(),
                    "dataset": manifest.name,
                    "classes": list(manifest.classes),
                },
            )
    labels = labels_of(splits.test)
    save_scores(run.path, scores, labels, [s.sample_id for s in splits.test])
    res = accuracy(scores, labels, n_cls)
    (run.path / "labelled_ids.json").write_text(json.dumps([s.sample_id for s in train]))
    result = {
        "kind": "evaluate",
        "protocol": cfg.protocol,
        "dataset": manifest.name,
        "checkpoint": checkpoint,
        **source,
        "label_fraction": cfg.label_fraction,
        "train_samples": len(train),
        "labelled_per_class": np.bincount([s.label for s in train], minlength=n_cls).tolist(),
        "labelled_ids": "labelled_ids.json",
        "scored": cfg.scored,
        "test_samples": len(splits.test),
        **res,
    }
    if cfg.protocol in FINETUNED:
        result["saved_checkpoint"] = str(run.checkpoint)
    return run.write_result(result, cfg.seed)


def changed_settings(
    folder: str | Path, cfg: EvalConfig, ignore=("model",), missing_ok: bool = False
) -> dict:
    """{key: (saved, wanted)} for the top-level config keys whose value in the run folder's
    config.json (as `evaluate` wrote it) differs from `cfg`'s, a key the saved config lacks
    included unless `missing_ok`; keys in `ignore` (by default the model, which evaluate()
    takes from the checkpoint) are not compared. What a cache of evaluation runs checks
    before it reuses one."""
    saved = json.loads((Path(folder) / "config.json").read_text())
    wanted = json.loads(json.dumps(to_dict(cfg)))
    return {k: (saved.get(k), v) for k, v in wanted.items()
            if k not in ignore and (k in saved or not missing_ok) and saved.get(k) != v}


SCORES = "scores.npz"


def save_scores(folder: Path, scores: torch.Tensor, labels: torch.Tensor, ids: list[str]):
    """`scores.npz` in a run folder: scores (N, classes) float32, labels (N,), sample_ids
    (N,) of the test split, in the same order."""
    np.savez(
        folder / SCORES,
        scores=scores.detach().float().numpy(),
        labels=labels.numpy(),
        sample_ids=np.array(ids, dtype=str),
    )


def load_scores(folder: str | Path) -> dict[str, np.ndarray]:
    path = Path(folder) / SCORES
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: fuse needs evaluation run folders (python -m mcc "
            f"evaluate ...), which save their test-set class scores there"
        )
    with np.load(path) as z:
        return {k: z[k] for k in ("scores", "labels", "sample_ids")}


def fuse(run_dirs: list[str | Path], out: str | Path) -> dict:
    """Late fusion of evaluation runs on the same test set (2s-AGCN's two streams, or any
    models): sum their class scores (the released 2s-AGCN's ensemble.py sums raw scores),
    then top-1 / top-5. The runs' sample ids must agree (as a set; the first run's order is
    used). Writes `out` with config.json, result.json and the fused scores.npz."""
    if len(run_dirs) < 2:
        raise ValueError(f"fuse needs at least two evaluation runs, got {len(run_dirs)}")
    runs = [load_scores(d) for d in run_dirs]
    first = runs[0]
    ids = [str(i) for i in first["sample_ids"]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{run_dirs[0]}: duplicate sample ids in {SCORES}")
    total = first["scores"].astype(np.float64)
    for d, r in zip(run_dirs[1:], runs[1:]):
        pos = {str(i): k for k, i in enumerate(r["sample_ids"])}
        missing = [i for i in ids if i not in pos]
        extra = len(pos) - (len(ids) - len(missing))
        if missing or extra or len(pos) != len(r["sample_ids"]):
            raise ValueError(
                f"cannot fuse {run_dirs[0]} and {d}: their test sample ids differ "
                f"({len(missing)} of {run_dirs[0]}'s missing from {d}, e.g. "
                f"{missing[:3]}; {extra} extra in {d}): evaluate both on the same dataset"
            )
        order = np.array([pos[i] for i in ids])
        if r["scores"].shape[1] != total.shape[1]:
            raise ValueError(
                f"cannot fuse {run_dirs[0]} ({total.shape[1]} classes) and {d} "
                f"({r['scores'].shape[1]} classes)"
            )
        if not np.array_equal(r["labels"][order], first["labels"]):
            raise ValueError(f"cannot fuse {run_dirs[0]} and {d}: same ids, different labels")
        total += r["scores"][order]
    scores, labels = torch.from_numpy(total).float(), torch.from_numpy(first["labels"]).long()
    members = []
    for d, r in zip(run_dirs, runs):
        info = _result_of(d)
        top1 = 100.0 * float((r["scores"].argmax(1) == r["labels"]).mean())
        members.append({"run": str(d), "protocol": info.get("protocol"), "top1": top1,
                        "dataset": info.get("dataset")})  # fmt: skip
    datasets = {m["dataset"] for m in members if m["dataset"] is not None}
    if len(datasets) > 1:
        raise ValueError(f"cannot fuse runs on different datasets: {sorted(datasets)}")
    run = RunDir(out)
    run.write_config({"kind": "fuse", "runs": [str(d) for d in run_dirs]})
    save_scores(run.path, scores, labels, ids)
    result = {
        "kind": "fuse",
        "dataset": datasets.pop() if datasets else None,
        "runs": members,
        "test_samples": len(ids),
        **accuracy(scores, labels, scores.shape[1]),
    }
    return run.write_result(result, _result_of(run_dirs[0]).get("seed", 0))


def _result_of(folder: str | Path) -> dict:
    path = Path(folder) / "result.json"
    return json.loads(path.read_text()) if path.is_file() else {}
