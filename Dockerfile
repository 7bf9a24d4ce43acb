# One image for every riskgate process, chosen by its command: api (default), worker,
# migrate, operator. The base is an argument so the image builds where no registry is
# reachable (scripts/image-test builds a Debian base with debootstrap); any image with
# Python 3.11+ and the venv module will do.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# Production dependencies only: the `dev` extra (embedded PostgreSQL and Redis) stays out.
COPY pyproject.toml README.md ./
COPY service ./service
# The package index's CA bundle, if the build needs one, arrives as a BuildKit secret and
# never lands in a layer.
RUN --mount=type=secret,id=pip-ca \
    python3 -m venv /opt/riskgate \
    && if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && /opt/riskgate/bin/pip install --no-cache-dir --disable-pip-version-check --no-compile . \
    && /opt/riskgate/bin/python -m compileall -q /opt/riskgate/lib

FROM ${BASE_IMAGE}
COPY --from=build /opt/riskgate /opt/riskgate
# A numeric uid, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
ENV PATH=/opt/riskgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    RISKGATE_HOST=0.0.0.0
EXPOSE 8000 8081 8080
ENTRYPOINT ["riskgate"]
CMD ["api"]
