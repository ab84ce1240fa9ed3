# One image for every govdeploy process: the serving gateway (default command), Prefect workers and
# the flow runs they start, and the MLflow and Prefect servers (the versions locked and tested together
# in requirements/lock.txt). Build it from the checkout's root:
#
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) \
#     -t registry.example.com/govdeploy:$(git rev-parse --short HEAD) .
#
# and deploy it by digest (infra/README.md, "Production path"). The code lives in /app (the working
# directory of prefect.yaml's pull step, GOVDEPLOY_PROJECT_DIR), the policy-as-code in /app/config,
# state in /var/lib/govdeploy (a volume); everything else is read-only and owned by root. The demo
# scenario is not part of the product and stays out.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY requirements/lock.txt /tmp/lock.txt
# Every package pinned by version and SHA-256 (a mismatch fails the build); --no-deps: nothing that
# is not in the lock; --only-binary: wheels only, no compiler and no code run at install time.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
       -r /tmp/lock.txt

FROM ${PYTHON_IMAGE}
ARG UID=10001
# the commit the image is built from (docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) .)
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.revision="${GIT_COMMIT}"
RUN groupadd --system --gid ${UID} govdeploy \
    && useradd --system --uid ${UID} --gid ${UID} --home-dir /home/govdeploy --create-home \
       --shell /usr/sbin/nologin govdeploy \
    && install -d -o ${UID} -g ${UID} -m 0750 /var/lib/govdeploy \
    && install -d -o ${UID} -g ${UID} -m 0700 /var/lib/govdeploy/keys
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY prefect.yaml ./
COPY config config
COPY govdeploy govdeploy
COPY tasks tasks
COPY flows flows
RUN /opt/venv/bin/python -m compileall -q govdeploy tasks flows
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/govdeploy \
    MPLCONFIGDIR=/tmp/matplotlib \
    PREFECT_HOME=/tmp/prefect \
    MLFLOW_DISABLE_TELEMETRY=true \
    GOVDEPLOY_PROJECT_DIR=/app \
    GOVDEPLOY_CONFIG_DIR=/app/config \
    GOVDEPLOY_STATE_DIR=/var/lib/govdeploy
USER 10001:10001
EXPOSE 8080
# The gateway; its health route is /healthz. It listens on every interface of its container (the
# GOVDEPLOY_HOST setting is for the loopback-only local stack): publish it behind TLS. It runs
# GOVDEPLOY_GATEWAY_WORKERS processes (default 1; set it to the container's cores).
CMD ["python", "-m", "govdeploy.serving.gateway.run", "--host", "0.0.0.0", "--port", "8080", \
     "--log-level", "warning"]
