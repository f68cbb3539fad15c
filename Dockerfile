# syntax=docker/dockerfile:1
# Two stages: build a virtualenv with the pinned dependencies, then copy it into a slim runtime
# image that runs as an unprivileged user. Migrations run as the container's start step, as the
# owner role when DATABASE_OWNER_URL is given (compose.yaml runs them in a one-shot service).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
# Install the pinned dependencies, then drop the project itself: the runtime imports it from
# /srv/sipas, next to alembic.ini and migrations/.
RUN /opt/venv/bin/pip install -c constraints.txt . && /opt/venv/bin/pip uninstall -y sipas

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv/sipas \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    WORKERS=2
RUN groupadd --system sipas && useradd --system --gid sipas --home-dir /srv/sipas sipas
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/sipas
COPY --chown=root:root alembic.ini ./
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root app ./app
USER sipas
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["sh", "-c", "python -m app.cli migrate && exec uvicorn app.main:create_app --factory --host 0.0.0.0 --port 8000 --workers \"$WORKERS\" --no-access-log --no-proxy-headers --timeout-graceful-shutdown 20"]
