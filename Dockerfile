# syntax=docker/dockerfile:1
#
# One image for every Python service. The command picks the service:
#   python -m services.web | services.signalling | services.matcher | services.moderation
# The image runs as an unprivileged user and writes nothing outside /tmp, so it runs
# with a read-only root filesystem when /tmp is a writable volume (tmpfs or emptyDir).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# Browser assets (socket.io-client, fonts, flags) come from the npm registry at build time,
# so the running web service never fetches anything from a third party.
FROM ${NODE_IMAGE} AS assets
WORKDIR /build
COPY package.json package-lock.json ./
# Lifecycle scripts stay off: every runtime package here is plain files to serve.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
# Only what the services import; requirements.lock adds the test and benchmark tools.
COPY requirements-runtime.lock /tmp/requirements-runtime.lock
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements-runtime.lock
# Pick the files the page needs out of node_modules (the same step `make setup` runs).
COPY --from=assets /build/node_modules/ /build/node_modules/
COPY scripts/copy_assets.py /build/copy_assets.py
RUN python /build/copy_assets.py --node-modules /build/node_modules --dest /build/vendor

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric id lets Kubernetes check runAsNonRoot without reading /etc/passwd.
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" calln \
    && useradd --system --uid "${APP_UID}" --gid calln --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin calln

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY shared/ shared/
COPY services/ services/
# The admin API client, for `kubectl exec` or `docker compose exec` into a moderation container.
COPY scripts/calln_admin.py scripts/calln_admin.py
COPY --from=builder /build/vendor/ services/web/static/vendor/
# Byte-code is compiled now because the root filesystem is read-only at run time.
RUN /opt/venv/bin/python -m compileall -q shared services scripts

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp

USER ${APP_UID}:${APP_UID}
# web 8080, gateway 8090, matcher ops 8092, moderation ops 8094 and admin API 8095.
EXPOSE 8080 8090 8092 8094 8095
CMD ["python", "-m", "services.web"]
