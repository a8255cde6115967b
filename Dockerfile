# The flightrec image: `flightrec worker` by default (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package needs: tests, jars and local state stay out of the image.
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY tools ./tools
COPY recorder ./recorder
COPY agents ./agents
COPY replay ./replay
COPY flightrec ./flightrec
RUN pip install . && useradd --system --uid 10001 --no-create-home flightrec

USER flightrec
ENTRYPOINT ["flightrec"]
CMD ["worker"]
