"""MCC: self-supervised skeleton action representations from motion consistency and
continuity (Su, Lin, Wu, ICCV 2021). Pure PyTorch + NumPy + PyArrow; never imports Ray."""

__version__ = "0.1.0"
