# One image for every part of the Smart Zone platform; compose.yaml picks the part with the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY sensors sensors
COPY simulator simulator
COPY settlement settlement
COPY dashboard dashboard
COPY smartzone smartzone
RUN pip install --no-cache-dir .
ENTRYPOINT ["smartzone"]
