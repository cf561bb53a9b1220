# One image for every process of the distributed setup (worker, bridge, API,
# simulator, migrations); docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ioc ioc
COPY streams streams
COPY alerts alerts
COPY ui_feed ui_feed
COPY simulators simulators
RUN pip install . && useradd --system --home /app ioc && mkdir -p /app/.ioc && chown ioc /app/.ioc
USER ioc
ENV IOC_DATA_DIR=/app/.ioc IOC_API_HOST=0.0.0.0
ENTRYPOINT ["ioc"]
CMD ["--help"]
