# One image for bifrost workers, the trainer service and the CLI.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
COPY trainer trainer
COPY router router
COPY client client
COPY cli cli
COPY config config
COPY devkafka devkafka
COPY kafka kafka
RUN pip install --no-cache-dir '.[rocksdb]'
ENV BIFROST_STORE=rocksdb:// BIFROST_DATA_DIR=/var/lib/bifrost BIFROST_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["bifrost-opt"]
CMD ["worker"]
