"""Named sets of overrides. `paper` is the defaults (Sec. 4.2 and ST-GCN's recipe); the
others shrink the model and schedule so that a 2-core machine finishes in minutes."""

PRETRAIN = {
    "paper": {},
    "small": {
        "model.width": 0.25,
        "optim.epochs": 30,
        "optim.schedule": "cosine",
        "optim.batch_size": 64,
        "loss.queue_size": 512,
    },
    "tiny": {
        "model.width": 0.125,
        "optim.epochs": 2,
        "optim.schedule": "cosine",
        "optim.batch_size": 16,
        "loss.queue_size": 64,
    },
}

EVALUATE = {
    "paper": {},
    "small": {
        "model.width": 0.25,
        "optim.epochs": 30,
        "optim.schedule": "cosine",
        "optim.batch_size": 32,
    },
    "tiny": {
        "model.width": 0.125,
        "optim.epochs": 2,
        "optim.schedule": "cosine",
        "optim.batch_size": 16,
    },
}
