"""maestro_lit: multi-reward GRPO with a learned Conductor (MAESTRO), on PyTorch Lightning."""

import logging

__version__ = "0.1.0"

# bitsandbytes (imported by peft whenever it is installed) tries, on CPUs with AVX512-BF16, to fetch
# an optional 4-bit kernel from a model hub and warns when it cannot; its own CPU kernels are used
# instead. Offline that warning is noise on every run, so only its errors are shown.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
