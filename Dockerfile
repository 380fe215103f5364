# maestro_lit on one CUDA GPU: `python -m maestro_lit <fit|validate|export> ...` (docs/docker.md).
#
#   docker build -t maestro-lit .
#   docker run --gpus all --rm -v "$PWD/checkpoints:/app/checkpoints" -v maestro-cache:/cache \
#       maestro-lit fit --config configs/base/gpu.yaml --config configs/models/qwen2.5-0.5b-instruct.yaml \
#         --config configs/tasks/webinstruct.yaml
#
# BASE is the official PyTorch runtime image of the torch the Makefile pins (TORCH ?= torch==2.13.0),
# by tag and digest; its CUDA 12.6 needs an NVIDIA driver >= 560. Only FROM reads BASE, so
# docker/check.sh builds this same file offline on a Debian stand-in (make docker-check).
# The Python dependencies come from docker/requirements.lock (docker/lock.sh), installed before the
# source is copied: a code or config edit rebuilds only the last layers. tests/test_docker.py checks this.
ARG BASE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime@sha256:6acf597eeb8e376a96580dde4952f37cc017fef732bb40bfc73f28f25e3f64b4
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    HF_HOME=/cache/huggingface \
    MAESTRO_LIT_CACHE=/cache/maestro_lit

# Non-root runtime user, uid 1000 (Ubuntu bases ship their own `ubuntu` user there: it is replaced).
# /cache (model downloads, the embedded tiny model) is world-writable so
# `docker run --user "$(id -u):$(id -g)"` also works with a bind-mounted checkpoints/.
RUN existing="$(id -nu 1000 2>/dev/null || true)" \
    && if [ -n "$existing" ]; then userdel "$existing"; fi \
    && useradd --create-home --uid 1000 --shell /bin/bash maestro \
    && mkdir -p /app/checkpoints /cache \
    && chown maestro:maestro /app/checkpoints \
    && chmod 1777 /cache

WORKDIR /app

# Dependency layer: the lock alone, so editing src/, configs/ or the README leaves it cached.
COPY docker/requirements.lock /tmp/requirements.lock
RUN python -m pip install --no-cache-dir --requirement /tmp/requirements.lock

# The project itself, offline: --no-index makes a dependency missing from the lock fail the
# build instead of arriving unpinned; the build backend (setuptools) is in the lock.
COPY pyproject.toml README.md ./
COPY src ./src
# hadolint ignore=DL3013
RUN python -m pip install --no-cache-dir --no-index --no-build-isolation ".[quant,hub]" \
    && rm -rf /app/src/*.egg-info /app/build
COPY configs ./configs

USER 1000:1000
VOLUME ["/app/checkpoints", "/cache"]
EXPOSE 6006
ENTRYPOINT ["python", "-m", "maestro_lit"]
CMD ["fit", "--config", "configs/quickstart.yaml", "--trainer.accelerator", "auto"]
