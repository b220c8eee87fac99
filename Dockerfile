# syntax=docker/dockerfile:1
# vaeserve image. Default: CUDA build of torch (GPU serving). CPU variant:
#   docker build --build-arg VARIANT=cpu -t vaeserve:cpu .
ARG VARIANT=cuda
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build stage: a virtualenv with torch (CUDA or CPU wheels) and the project ---------------------
FROM ${PYTHON_IMAGE} AS build
ARG VARIANT
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch: a wheel in .wheels/ of the build context when there is one (where PyTorch's index cannot be reached:
# `pip download torch==2.13.0 --no-deps -d .wheels` on a machine whose pip gets the CPU build; scripts/deploy-check.sh
# does it); else CUDA wheels from PyPI's default torch (bundles the CUDA runtime), CPU wheels from PyTorch's CPU index.
# .wheels/ca.crt, when present: the CA bundle of a TLS-intercepting proxy between this build and PyPI (this
# stage only; the runtime stage copies the venv alone).
COPY pyproject.toml .wheel[s] /tmp/wheels/
RUN if [ -f /tmp/wheels/ca.crt ]; then cp /tmp/wheels/ca.crt /etc/ssl/certs/ca-certificates.crt; fi
RUN if ls /tmp/wheels/torch-*.whl >/dev/null 2>&1; then \
      pip install /tmp/wheels/torch-*.whl; \
    elif [ "$VARIANT" = "cpu" ]; then \
      pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu; \
    else \
      pip install "torch==${TORCH_VERSION}"; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model ./model
COPY training ./training
COPY service ./service
COPY checkpoint ./checkpoint
COPY vaeclient ./vaeclient
RUN pip install .

# --- runtime stage: slim, non-root, models baked in as defaults ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 vaeserve \
 && useradd --system --uid 10001 --gid vaeserve --home-dir /app --shell /usr/sbin/nologin vaeserve
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=vaeserve:vaeserve models ./models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VAESERVE_HOST=0.0.0.0 \
    VAESERVE_PORT=8000 \
    VAESERVE_GRPC_PORT=8001 \
    VAESERVE_MODEL_REPOSITORY=/app/models
USER 10001:10001
EXPOSE 8000 8001
# Mount another repository read-only over /app/models to serve other checkpoints.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service"]
