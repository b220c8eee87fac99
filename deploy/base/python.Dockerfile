# A Python 3.11 base made from a locally debootstrapped Debian bookworm (where Docker Hub cannot be reached):
#   debootstrap --variant=minbase bookworm DIR && tar -C DIR -c . | docker import - vaeserve-bookworm:base
#   docker build -f deploy/base/python.Dockerfile -t vaeserve-python:3.11-bookworm deploy/base
# scripts/deploy-check.sh does all of it. Stands in for python:3.11-slim-bookworm (same Debian, same Python minor).
ARG BASE=vaeserve-bookworm:base
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/bin/python3 /usr/local/bin/python
