# syntax=docker/dockerfile:1
# Multi-stage build: wheels are built in the first stage, the runtime image
# holds only the installed package and runs as an unprivileged user.
# Signing keys are never part of the image: mount them (see docker-compose.yml).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cleanfeed ./cleanfeed
COPY blocklist ./blocklist
COPY signer ./signer
COPY api ./api
COPY clients ./clients
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[server,postgres]'

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 999 cleanfeed && useradd --system --uid 999 --gid cleanfeed --home /var/lib/cleanfeed cleanfeed \
    && mkdir -p /var/lib/cleanfeed && chown cleanfeed:cleanfeed /var/lib/cleanfeed && chmod 0700 /var/lib/cleanfeed
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'cleanfeed[server,postgres]' && rm -rf /wheels
# The image holds the ISP client and the auditor too (same package, base
# install): fail the build if they cannot run, e.g.
# `docker run --rm IMAGE isp sync --once ...` (docs/isp.md).
RUN cleanfeed --version && cleanfeed isp --help >/dev/null && cleanfeed isp squid-helper --help >/dev/null \
    && cleanfeed audit --help >/dev/null
USER cleanfeed
WORKDIR /var/lib/cleanfeed
ENV CLEANFEED_DATA_DIR=/var/lib/cleanfeed/data
# the embedded default keeps its database and keys here: mount a volume
VOLUME ["/var/lib/cleanfeed/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["cleanfeed"]
CMD ["serve", "--data-dir", "/var/lib/cleanfeed/data", "--host", "0.0.0.0", "--port", "8080"]
