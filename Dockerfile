# Switchboard gateway image: slim, non-root, with a health check.
#   docker build -t switchboard .
#   docker run -p 8080:8080 -e SWITCHBOARD_SECRET_KEY=... -e SWITCHBOARD_PUBLIC_URL=https://... \
#     -e SWITCHBOARD_TRUSTED_ISSUERS='[{"issuer":"...","jwks_url":"..."}]' switchboard
#   docker run --rm switchboard demo      # the demo: gateway and sample agents in the container
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY registry ./registry
COPY policies ./policies
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SWITCHBOARD_DATA_DIR=/var/lib/switchboard \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_PORT=8080
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/switchboard switchboard \
    && mkdir -p /var/lib/switchboard \
    && chown switchboard:switchboard /var/lib/switchboard
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The sample agents `switchboard demo` runs (not part of the package).
COPY examples /opt/switchboard/examples
ENV SWITCHBOARD_EXAMPLES=/opt/switchboard/examples
USER switchboard
WORKDIR /var/lib/switchboard
VOLUME ["/var/lib/switchboard"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["switchboard"]
CMD ["serve"]
