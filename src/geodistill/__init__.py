"""geodistill: knowledge distillation for aerial scene classifiers."""

__version__ = "0.1.0"
