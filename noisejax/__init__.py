"""noisejax: how neural networks learn when training labels are wrong."""

__version__ = "0.1.0"
