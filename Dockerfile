# One image, run three ways (gateway, processor, logsink): see compose.yaml.
FROM python:3.11-slim
ENV UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY services ./services
COPY web ./web
RUN uv sync --frozen --no-dev && useradd --system --home /data jobline && mkdir -p /data && chown jobline /data
USER jobline
ENV JOBLINE_DATA_DIR=/data JOBLINE_WEB_DIR=/app/web
CMD ["python", "-m", "jobline.gateway"]
