# syntax=docker/dockerfile:1
#
# One image for every ptnudge process (web, worker, beat, migrate); docker-compose.yml picks
# the command. Two stages: the builder turns the project and its dependencies into wheels,
# the runtime installs those wheels and nothing else, so no compiler, pip cache or source
# tree reaches production.

# ---------------------------------------------------------------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so editing code does not rebuild every wheel.
# Every dependency ships manylinux wheels (psycopg[binary], pydantic-core, ...), so the builder
# needs no compiler either; if one ever needs building, install build-essential here, only.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip wheel --wheel-dir /wheels --requirement requirements.txt

# Then the project itself. Templates, program files and migrations are package data
# (pyproject.toml [tool.setuptools.package-data]), so the wheel is all the runtime needs.
COPY service ./service
COPY tasks ./tasks
COPY config ./config
COPY templates ./templates
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

# PTNUDGE_ENV=production makes the image fail closed: without a real PTNUDGE_SECRET_KEY (and
# Twilio token when SMS is on) every process refuses to start. `-e PTNUDGE_ENV=development`
# runs `ptnudge demo` from the image.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PTNUDGE_ENV=production

RUN groupadd --system --gid 10001 ptnudge \
    && useradd --system --uid 10001 --gid ptnudge --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin ptnudge

# A bind mount instead of COPY keeps the wheels out of the image's layers. --no-index: install
# exactly what the builder resolved, never something newer from the network.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*

WORKDIR /app
RUN chown ptnudge:ptnudge /app

# Installed packages stay root-owned and read-only to the processes that run them.
USER ptnudge

EXPOSE 8000

# The web app by default; compose overrides the command for worker, beat and migrate.
# --proxy-headers: TLS ends at a reverse proxy in front (see docs/deploy.md).
# Idle connections stay open longer than the reverse proxy keeps them (Caddy: 2 min): a proxy
# must never send a webhook on a connection uvicorn is closing (default 5 s), or Twilio gets
# a 502 and the reply is not stored until its retry.
CMD ["uvicorn", "service.web:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", \
     "--timeout-keep-alive", "150"]
