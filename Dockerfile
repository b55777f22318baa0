# Frontdesk server image (CPU). Build: docker build -t frontdesk .
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    FRONTDESK_HOME=/data PIP_NO_CACHE_DIR=1
WORKDIR /app
# torch first and pinned: the CPU wheel, never the multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY bot bot
COPY nlu nlu
COPY knowledge knowledge
COPY adapters adapters
RUN pip install .
VOLUME ["/data", "/models", "/kb"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=300s CMD \
    python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["frontdesk", "serve", "--host", "0.0.0.0", "--port", "8000"]
