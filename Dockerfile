# syntax=docker/dockerfile:1
# Frontdesk server image (CPU only). Build: docker build -t frontdesk:0.1.0 .
#
# Two stages: the build stage installs the dependencies into a virtualenv and trains the demo model (so no
# container ever trains at start-up); the runtime stage copies only the virtualenv and the model, and runs as an
# unprivileged user whose root filesystem may be mounted read-only (everything written goes under
# FRONTDESK_HOME, /tmp and PROMETHEUS_MULTIPROC_DIR).
# Base image pinned by tag (both stages: the virtualenv's python must be the same binary), so a rebuild gets the
# same Python and Debian; pin it by digest too in your registry if you mirror it.

FROM python:3.11.11-slim-bookworm AS build
# DL3064 is a false positive here: it reads the "TOKEN" in TOKENIZERS_PARALLELISM as a secret.
# hadolint ignore=DL3064
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLCONFIGDIR=/tmp/matplotlib \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch first and pinned, from the PyTorch CPU index: the project pins 2.13.0, and PyPI's default wheel for
# Linux is the multi-GB CUDA build. DL3059: a layer of its own on purpose, so that changing any other
# dependency reuses its large layer.
# hadolint ignore=DL3059
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common common
COPY bot bot
COPY nlu nlu
COPY knowledge knowledge
COPY adapters adapters
RUN pip install .
# The demo model, trained once here exactly as `frontdesk run` would at first start (adapters.runtime.demo_model).
RUN FRONTDESK_HOME=/tmp/build python -c \
      "from adapters.runtime.demo_model import ensure_demo_model; from adapters.runtime.settings import Settings; ensure_demo_model(Settings())" \
    && mkdir -p /opt/frontdesk \
    && mv /tmp/build/models/demo /opt/frontdesk/demo-model \
    && rm -rf /tmp/build

FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="frontdesk" \
      org.opencontainers.image.description="Self-hosted customer-service chatbot" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed uid/gid, so Kubernetes' runAsUser/fsGroup and host bind mounts can name it.
RUN groupadd --system --gid 10001 frontdesk \
    && useradd --system --uid 10001 --gid frontdesk --home-dir /var/lib/frontdesk --shell /usr/sbin/nologin frontdesk \
    && mkdir -p /var/lib/frontdesk /var/run/frontdesk-metrics /models /kb \
    && chown frontdesk:frontdesk /var/lib/frontdesk /var/run/frontdesk-metrics
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/frontdesk /opt/frontdesk
# HOME, HF_HOME, MPLCONFIGDIR and XDG_CACHE_HOME all point at writable places: libraries that cache something
# must not try the read-only root filesystem. FRONTDESK_MODEL_DIR defaults to the baked demo model.
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    HOME=/var/lib/frontdesk FRONTDESK_HOME=/var/lib/frontdesk \
    HF_HOME=/tmp/huggingface MPLCONFIGDIR=/tmp/matplotlib XDG_CACHE_HOME=/tmp/cache \
    PROMETHEUS_MULTIPROC_DIR=/var/run/frontdesk-metrics \
    FRONTDESK_MODEL_DIR=/opt/frontdesk/demo-model
WORKDIR /var/lib/frontdesk
USER 10001:10001
EXPOSE 8000
# Liveness only (the process answers); readiness (/readyz: model, index and Redis) is the orchestrator's call.
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 CMD \
    ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["frontdesk"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
