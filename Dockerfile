# maestro_lit on one CUDA GPU: `python -m maestro_lit <fit|validate|export> ...`.
#
#   docker build -t maestro-lit .
#   docker run --gpus all --rm -v "$PWD/checkpoints:/app/checkpoints" -v maestro-cache:/cache \
#       maestro-lit fit --config configs/base/gpu.yaml --config configs/models/qwen2.5-0.5b-instruct.yaml \
#         --config configs/rewards/helpfulness.yaml --config configs/tasks/ultrafeedback.yaml  (README "GPU recipes")
#
# torch comes from the official image and is the same version the Makefile pins
# (TORCH ?= torch==2.13.0); the project is then installed exactly as the README says,
# `pip install ".[quant]"` (plus `hub` so recipes can stream datasets from the Hub).
# CUDA 12.6 needs an NVIDIA driver >= 560; tests/test_docker.py checks these pins.
FROM pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    HF_HOME=/cache/huggingface \
    MAESTRO_LIT_CACHE=/cache/maestro_lit

# Non-root runtime user. /cache (model downloads, the embedded tiny model) is world-writable
# so `docker run --user "$(id -u):$(id -g)"` also works with a bind-mounted checkpoints/.
RUN useradd --create-home --uid 1000 --shell /bin/bash maestro \
    && mkdir -p /app/checkpoints /cache \
    && chown maestro:maestro /app/checkpoints \
    && chmod 1777 /cache

WORKDIR /app

# The package first (pyproject.toml reads README.md), configs last: editing a config
# does not reinstall the dependencies.
COPY pyproject.toml README.md ./
COPY src ./src
# The project itself, not a third-party package: its dependency ranges live in pyproject.toml.
# hadolint ignore=DL3013
RUN python -m pip install --no-cache-dir ".[quant,hub]" \
    && rm -rf /app/src/*.egg-info /app/build
COPY configs ./configs

USER 1000:1000
VOLUME ["/app/checkpoints", "/cache"]
EXPOSE 6006
ENTRYPOINT ["python", "-m", "maestro_lit"]
CMD ["fit", "--config", "configs/quickstart.yaml", "--trainer.accelerator", "auto"]
