# jc-alerting in a container. Build and run: see docs/operations.md ("Running in a container").
#
#   docker build -t jc-alerting .
#   docker run -d --name jc-alerting -v jc-alerting-state:/var/lib/jc-alerting \
#     -v "$PWD/config.yaml:/etc/jc-alerting/config.yaml:ro" \
#     -e JUMPCLOUD_API_KEY -p 127.0.0.1:9108:9108 jc-alerting
#
# Without a mounted config the container refuses to start (exit 78), so a forgotten mount
# never looks healthy while polling a simulator. The demo is explicit:
#   docker run --rm -p 127.0.0.1:9108:9108 jc-alerting demo     (or -e JC_ALERTING_DEMO=1)
#
# A config of your own must set state.path under /var/lib/jc-alerting (the volume) and
# server.listen: 0.0.0.0:9108 (published on the host's loopback only, as above).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 jc-alerting \
 && useradd --system --uid 10001 --gid jc-alerting --home-dir /var/lib/jc-alerting \
      --shell /usr/sbin/nologin jc-alerting \
 && mkdir -p /var/lib/jc-alerting /etc/jc-alerting \
 && chown jc-alerting:jc-alerting /var/lib/jc-alerting \
 && chmod 0700 /var/lib/jc-alerting

WORKDIR /opt/jc-alerting
COPY pyproject.toml README.md ./
COPY alerting ./alerting
RUN pip install .

# The shipped rule pack, templates and demo config (paths in a config are relative to its
# file). The demo config is adapted to the container: state on the volume, the health port
# reachable for `-p`. It is demo.yaml, not config.yaml: mount your own config.yaml
# (relative rules/templates paths then find the shipped pack; keep state.path on the
# volume and server.listen: 0.0.0.0:9108).
COPY rules /etc/jc-alerting/rules
COPY templates /etc/jc-alerting/templates
COPY config.yaml /etc/jc-alerting/demo.yaml
COPY deploy/docker-entrypoint.sh /usr/local/bin/jc-alerting-entrypoint
RUN sed -i \
      -e 's#path: state/alerting.db#path: /var/lib/jc-alerting/alerting.db#' \
      -e 's#path: state/alerts.jsonl#path: /var/lib/jc-alerting/alerts.jsonl#' \
      -e 's#listen: 127.0.0.1:9108#listen: 0.0.0.0:9108#' \
      /etc/jc-alerting/demo.yaml \
 && grep -q '/var/lib/jc-alerting/alerting.db' /etc/jc-alerting/demo.yaml \
 && grep -q 'listen: 0.0.0.0:9108' /etc/jc-alerting/demo.yaml \
 && chmod 0755 /usr/local/bin/jc-alerting-entrypoint \
 && alerting validate --config /etc/jc-alerting/demo.yaml

USER jc-alerting:jc-alerting
WORKDIR /var/lib/jc-alerting
VOLUME ["/var/lib/jc-alerting"]
EXPOSE 9108

# 200 while polls succeed; 503 when the last successful poll is too old or the API key is
# rejected. The URL must match server.listen.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status == 200 else 1)"]

STOPSIGNAL SIGTERM
# No arguments: `alerting run` with the mounted /etc/jc-alerting/config.yaml (refused when
# absent); `demo`: the simulator demo; anything else: an `alerting` command line.
ENTRYPOINT ["jc-alerting-entrypoint"]
CMD []
