# Image for bifrost workers (and, later, the trainer and catalog refresher).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
COPY trainer trainer
COPY client client
COPY cli cli
COPY config config
COPY devkafka devkafka
RUN pip install --no-cache-dir '.[rocksdb]'
ENV BIFROST_STORE=rocksdb:// BIFROST_DATA_DIR=/var/lib/bifrost BIFROST_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["bifrost-opt"]
CMD ["worker"]
