# reconcile in a container, run on each Docker host as docuum, watchtower and docker-gc are:
#
#   docker build -t reconciler .
#   docker run --rm --init -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /etc/reconciler:/etc/reconciler:ro -v /var/lib/reconciler:/var/lib/reconciler \
#     -v /run/lock:/run/lock reconciler apply /etc/reconciler/images.yaml --quiet
#
# BASE is any Debian (trixie or later) image; when it lacks python3 or reconcile's dependencies,
# they are installed from Debian's packages (the build then needs the network).
ARG BASE=debian:trixie-slim
FROM ${BASE}

RUN if ! python3 -c 'import yaml, docker, jsonschema, click, rich, pip, setuptools' 2>/dev/null; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-yaml python3-docker python3-jsonschema python3-click python3-rich \
        python3-pip python3-setuptools \
      && rm -rf /var/lib/apt/lists/*; \
    fi

COPY . /src/reconciler
# Only the package itself: its dependencies are Debian's, installed above.
RUN pip install --no-deps --no-build-isolation --no-cache-dir --break-system-packages \
      --root-user-action=ignore /src/reconciler \
    && rm -rf /src/reconciler \
    && mkdir -p /var/lib/reconciler /run/lock /etc/reconciler && chmod 1777 /run/lock

# The host's socket, state directory and lock directory are mounted here; the lock directory
# must be the host's /run/lock, so an apply in the container and one on the host take turns.
ENV DOCKER_HOST=unix:///var/run/docker.sock \
    RECONCILE_STATE_DIR=/var/lib/reconciler \
    RECONCILE_LOCK_DIR=/run/lock
VOLUME ["/var/lib/reconciler"]
ENTRYPOINT ["reconcile"]
CMD ["plan", "/etc/reconciler/images.yaml"]
