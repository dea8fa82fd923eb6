# syntax=docker/dockerfile:1
# One image for every tokenledger process; the compose file picks the command
# (serve, migrate, projector, scheduler, relay).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
# Wheels for the project and all its dependencies, so the final stage needs no source tree.
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOKENLEDGER_DATA_DIR=/var/lib/tokenledger
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels tokenledger \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/tokenledger --create-home tokenledger
USER tokenledger
WORKDIR /var/lib/tokenledger
EXPOSE 8080
ENTRYPOINT ["tokenledger"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
