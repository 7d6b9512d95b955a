# syntax=docker/dockerfile:1
# The ednaquery image for the indexer daemon and the query CLI.
# Slim Python, the project installed WITHOUT the `train` extra (no torch: the image stays small),
# running as an unprivileged user. compose.yaml runs it as `ednaquery watch /experiments`.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
# Build one wheel of this project; its dependencies are resolved in the runtime stage.
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# UID/GID of the user that owns the experiments folder on the host (compose passes them from .env).
ARG UID=1000
ARG GID=1000
RUN groupadd --non-unique --gid "${GID}" app \
    && useradd --non-unique --uid "${UID}" --gid "${GID}" --create-home --shell /usr/sbin/nologin app
COPY --from=build /wheels /wheels
# The core dependencies only: no `[train]` extra here (that is Dockerfile.trainer's job).
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && ednaquery --help >/dev/null
USER app
WORKDIR /home/app
CMD ["ednaquery", "watch", "/experiments"]
