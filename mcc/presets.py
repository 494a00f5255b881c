"""Named sets of overrides, and the evaluation config that goes with a pretraining run.

`paper` is the defaults (Sec. 4.2 and ST-GCN's recipe); `small`
shrinks the model and schedule so that a 2-core machine finishes a run in minutes; `demo`
(the quick start) shrinks further to show the whole path in a few minutes; `tiny` is for tests.

Pretraining in the reduced presets `small`, `demo` and `sweep` departs from the paper's
optimiser in FAST_START (below), so that MCC's InfoNCE leaves its chance value within the
few epochs a 2-core machine affords (docs/method.md, "Reduced presets"). `tiny` (tests)
keeps SGD but at lr 0.01: at small width and batch the paper's 0.1 damps the temporal
kernels into time averages (docs/method.md, "Why some rules are what they are").

Downstream training in `small` uses Adam, which leaves the from-scratch plateau of a small
training set where SGD does not, and the linear protocol's classifier (on standardised
frozen features) trains at 1e-2, where 1e-3 underfits (measured: docs/method.md, "Why some
rules are what they are"; docs/findings.md, "Notes behind smaller choices").
"""

# Pretraining that leaves InfoNCE's plateau within a few epochs on 2 cores (docs/method.md,
# "Reduced presets", which gives the measurement behind each value): Adam instead of SGD,
# batch 8 (more steps per epoch at about the same cost), key momentum 0.99 instead of 0.999
# (over a few hundred steps a 0.999 key encoder keeps most of its initial weights), tau 0.2,
# and speeds 1, 2 (at 4 and 8 a 32-frame clip outruns short sequences and wraps).
FAST_START = {
    "optim.optimizer": "adam",
    "optim.lr": 0.001,
    "optim.batch_size": 8,
    "loss.momentum": 0.99,
    "loss.tau": 0.2,
    "sampling.speeds": "1,2",
}

PRETRAIN = {
    "paper": {},
    "small": {
        "model.width": 0.25,
        "optim.epochs": 20,
        "optim.schedule": "cosine",
        **FAST_START,
        "loss.queue_size": 256,
    },
    "demo": {
        "model.width": 0.125,
        "optim.epochs": 5,
        "optim.schedule": "cosine",
        **FAST_START,
        "loss.queue_size": 256,
    },
    "tiny": {
        "model.width": 0.125,
        "optim.epochs": 2,
        "optim.schedule": "cosine",
        "optim.batch_size": 16,
        "optim.lr": 0.01,
        "loss.queue_size": 64,
    },
    # python tune/sweep.py's trials: small enough for a sweep on 2 cores in minutes, with the
    # validation split (20 % of each training class) that the objective needs. A constant lr:
    # a cosine decay spent the last of the 8 epochs at a small lr while the slow seeds were
    # still leaving InfoNCE's plateau (docs/method.md, "Reduced presets").
    "sweep": {
        "model.width": 0.125,
        "optim.epochs": 8,
        "optim.schedule": "constant",
        **FAST_START,
        "loss.queue_size": 256,
        "data.val_fraction": 0.2,
    },
}

EVALUATE = {
    "paper": {},
    "small": {
        "model.width": 0.25,
        "optim.epochs": 30,
        "optim.schedule": "cosine",
        "optim.batch_size": 32,
        "optim.optimizer": "adam",
        "optim.lr": 0.001,
        "linear_lr": 0.01,
    },
    "demo": {
        "model.width": 0.125,
        "optim.epochs": 10,
        "optim.schedule": "cosine",
        "optim.batch_size": 32,
        "optim.optimizer": "adam",
        "optim.lr": 0.001,
        "linear_lr": 0.01,
    },
    "tiny": {
        "model.width": 0.125,
        "optim.epochs": 2,
        "optim.schedule": "cosine",
        "optim.batch_size": 16,
    },
}


# The sweep scores its trials with the `small` downstream recipe (tune/scoring.py); a run
# pretrained with `--preset sweep` is evaluated the same way.
EVALUATE["sweep"] = EVALUATE["small"]

# The semi-supervised protocol on a small labelled set (`python tune/sweep.py
# --confirm-protocol semi`): the `small` recipe at batch 8 for 60 epochs, from the linear
# protocol's layer (LP-FT). At batch 32 the 60-72 labelled clips of 10 % of the embedded
# default make 1-2 steps an epoch; both chosen on the validation carve (docs/method.md, "The
# semi-supervised recipe").
EVALUATE["semi"] = {**EVALUATE["small"], "optim.batch_size": 8, "optim.epochs": 60,
                    "head_init": "probe"}  # fmt: skip


def evaluation(pre, preset: str, overrides: dict | None = None):
    """The EvalConfig that scores an encoder pretrained with `pre`: the `preset`'s downstream
    recipe on the same data, normalisation, width (used without a checkpoint) and seed."""
    from mcc.config import EvalConfig, apply_overrides

    return apply_overrides(
        EvalConfig(),
        {**EVALUATE[preset], "data.path": pre.data.path, "data.normalize": pre.data.normalize,
         "model.width": str(pre.model.width), "model.backbone": pre.model.backbone,
         "model.stream": pre.model.stream, "seed": str(pre.seed), **(overrides or {})},
    )  # fmt: skip
