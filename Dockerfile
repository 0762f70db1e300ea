# syntax=docker/dockerfile:1
# Targets: `api` (ONNX Runtime, no torch), `worker` (CUDA torch, trains), `mlflow` (tracking server with
# PostgreSQL and S3 clients). Build one with e.g. `docker build --target api -t sdhrnet-api .`.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SDHRNET_HOME=/var/lib/sdhrnet
RUN apt-get update && apt-get install -y --no-install-recommends libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 sdhrnet && mkdir -p /var/lib/sdhrnet && chown sdhrnet /var/lib/sdhrnet
WORKDIR /app

# ---------------------------------------------------------------------------------------------------------
FROM base AS api
# The API imports landmarks (the torch-free core), registry and worker (as a
# Celery client) - none of which import torch - so torch is deliberately absent from this image.
COPY requirements ./requirements
RUN pip install -r requirements/serve.txt
COPY pyproject.toml README.md MANIFEST.in ./
COPY sdhrnet ./sdhrnet
COPY landmarks ./landmarks
COPY registry ./registry
COPY worker ./worker
COPY service ./service
RUN pip install --no-deps . && python -c "import service.app, sys; assert 'torch' not in sys.modules"
USER sdhrnet
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/livez || exit 1
CMD ["sdhrnet", "serve", "--host", "0.0.0.0", "--port", "8000", "--register-default"]

# ---------------------------------------------------------------------------------------------------------
FROM base AS worker
# torch from PyPI on linux/x86_64 is the CUDA build (its CUDA libraries come as pip wheels), so no CUDA base
# image is needed; the host needs the NVIDIA driver and the container toolkit (see the compose GPU reservation).
COPY requirements ./requirements
RUN pip install -r requirements/serve.txt -r requirements/train.txt
COPY pyproject.toml README.md MANIFEST.in ./
COPY sdhrnet ./sdhrnet
COPY landmarks ./landmarks
COPY trainer ./trainer
COPY registry ./registry
COPY worker ./worker
COPY service ./service
RUN pip install --no-deps .
USER sdhrnet
ENV SDHRNET_DEVICE=cuda
CMD ["sdhrnet", "worker"]

# ---------------------------------------------------------------------------------------------------------
FROM base AS mlflow
RUN pip install "mlflow==3.17.2" "psycopg2-binary>=2.9" "boto3>=1.34"
USER sdhrnet
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD curl -fsS http://127.0.0.1:5000/health || exit 1
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
