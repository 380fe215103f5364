"""maestro_lit: multi-reward GRPO with a learned Conductor (MAESTRO), on PyTorch Lightning."""

__version__ = "0.1.0"
