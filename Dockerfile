# One image for the four services, the supplier EDI adapter and the console (the board); the compose
# `command:` (or the SERVICE build arg) picks which one runs.
#   docker build -t backorder:local .   then   docker run -e ... backorder:local python -m services.order
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Dependencies first, from an empty skeleton of the packages, so a code change does not re-install them.
# The package list in pyproject.toml must find its folders, hence the mkdir.
COPY pyproject.toml constraints.txt ./
RUN mkdir -p libs/backbone/contracts libs/backbone/testing \
        services/order services/inventory services/procurement services/notifier services/console \
        services/edi \
    && pip install -c constraints.txt . \
    && pip uninstall -y backorder

# Then the code itself, installed as a regular (non-editable) package; the sources are not kept.
COPY libs ./libs
COPY services ./services
RUN pip install --no-deps -c constraints.txt . \
    && rm -rf /src

WORKDIR /app
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it (deploy/k8s runs it as 10001). The EDI
# adapter's folders belong to it, so a new compose volume mounted there takes that owner.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin backorder \
    && install -d -o 10001 -g 10001 /var/lib/backorder/edi
USER 10001

ARG SERVICE=order
ENV SERVICE=${SERVICE}
# exec: python becomes PID 1 and receives the SIGTERM of `docker stop` for a clean shutdown.
CMD ["sh", "-c", "exec python -m \"services.${SERVICE}\""]
