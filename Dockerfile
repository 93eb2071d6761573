# latentode image; the default command runs the spiral demo.
#   docker build -t latentode .                          # CPU torch
#   docker build --build-arg TORCH=cuda -t latentode .   # CUDA torch (run with --gpus all)
FROM python:3.11-slim
ARG TORCH=cpu
WORKDIR /app
COPY pyproject.toml README.md ./
COPY latentode ./latentode
COPY scripts ./scripts
COPY data ./data
# Same install steps as the README (scripts/setup.sh); only the torch build differs.
RUN if [ "$TORCH" = "cuda" ]; then spec="torch"; \
    else spec="torch==2.13.0"; pip config set global.extra-index-url "https://download.pytorch.org/whl/cpu"; fi \
 && TORCH_SPEC="$spec" bash scripts/setup.sh
ENV PATH="/app/.venv/bin:$PATH" MPLBACKEND=Agg
CMD ["latentode", "demo", "--out", "/app/demo_out"]
