# drwatch: a slim image with the service and the PostgreSQL client tools that restore drills use.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/drwatch
COPY pyproject.toml README.md ./
COPY app ./app
COPY alembic ./alembic
RUN /opt/drwatch/bin/pip install .

FROM python:3.11-slim-bookworm
# pg_dump/pg_restore/psql for backup verification and restore drills, zstd for .zst dumps.
# Versions follow the Debian release of the base image, which is pinned above.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client zstd \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/drwatch --create-home drwatch
COPY --from=build /opt/drwatch /opt/drwatch
ENV PATH=/opt/drwatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DRWATCH_STATE_URL=sqlite+aiosqlite:////var/lib/drwatch/state.db
USER 10001:10001
WORKDIR /var/lib/drwatch
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/health/live', timeout=2)"]
ENTRYPOINT ["drwatch"]
CMD ["serve"]
