# The runtime image of hpo-kfp's pipeline steps, with the examples' dependencies.
#   docker build -t REGISTRY/hpo-kfp:0.1.0 . && docker push REGISTRY/hpo-kfp:0.1.0
#   hpo-kfp compile EXPERIMENT.yaml -o pipeline.yaml --image REGISTRY/hpo-kfp:0.1.0
FROM python:3.11-slim

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv

WORKDIR /opt/hpo-kfp
COPY pyproject.toml uv.lock README.md ./
# Pinned dependencies first (a cached layer), from the same lock file the tests use.
# The validate extra: the Kubernetes runner checks a rendered Job, Pod... against the schemas
# offline before it creates it, and skips the check without it.
RUN uv export --frozen --no-dev --group examples --group mlmd --extra plot --extra postgres --extra mysql --extra serve --extra validate --extra cluster --no-emit-project -o /tmp/requirements.txt \
    && uv pip install --system --no-cache -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY hatch_build.py ./
COPY hpo_kfp hpo_kfp
COPY examples examples
# The build takes the report page's charting library from the npm registry (hatch_build.py).
RUN uv pip install --system --no-cache --no-deps .

# Steps need no privileges of their own.
RUN useradd --uid 10001 --no-create-home hpo
USER 10001
