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
RUN pip install "numpy>=1.26" "opencv-python-headless>=4.9" "onnxruntime>=1.18" "onnx>=1.16" "pydantic>=2.6" \
    "pydantic-settings>=2.2" "fastapi>=0.110" "uvicorn[standard]>=0.29" "python-multipart>=0.0.9" \
    "prometheus-client>=0.20" "httpx>=0.27" "mlflow-skinny==3.17.2" "celery[redis]>=5.4,<6" "redis>=5" \
    "sqlalchemy>=2" "scipy>=1.11" "h5py>=3.10" "pyyaml>=6" "pillow>=10" \
    "fastapi-offline>=1.7"
COPY pyproject.toml README.md ./
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
RUN pip install "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY sdhrnet ./sdhrnet
COPY landmarks ./landmarks
COPY trainer ./trainer
COPY registry ./registry
COPY worker ./worker
COPY service ./service
RUN pip install .
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
