# One image for bifrost workers, the trainer service, the one-shot bootstrap and the CLI.
FROM python:3.11-slim
# LightGBM (trainer, reference router) needs the GNU OpenMP runtime, which the slim image lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# constraints.txt pins the versions CI tested (the same pins scripts/setup.sh installs).
COPY pyproject.toml README.md constraints.txt ./
COPY schemas schemas
COPY streams streams
COPY trainer trainer
COPY router router
COPY client client
COPY cli cli
COPY config config
COPY devkafka devkafka
COPY kafka kafka
COPY catalog catalog
COPY webhooks webhooks
COPY common common
COPY storage storage
COPY gatesim gatesim
# The bundled full-information dataset: `bifrost-opt init` bootstraps the first artifact from it.
COPY data/routing-eval data/routing-eval
RUN pip install --no-cache-dir '.[rocksdb]' -c constraints.txt
ENV BIFROST_STORE=rocksdb:// BIFROST_DATA_DIR=/var/lib/bifrost BIFROST_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["bifrost-opt"]
CMD ["worker"]
