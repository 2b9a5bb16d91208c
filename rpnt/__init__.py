"""rpnt: Robust Pre-trained Neural Transformer pipeline for motor-cortex decoding."""

__version__ = "0.1.0"
