"""The Ray side of MCC: Ray Data sampling, Ray Train pretraining, Ray Tune + Optuna sweeps.

The only package that imports Ray; the method itself lives in `mcc` and is reused unchanged.
"""
