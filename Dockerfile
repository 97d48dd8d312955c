# kerasdojo with GPU-enabled TensorFlow (TensorFlow's CUDA 12 wheels), Ray and Optuna.
#
#   docker build -t kerasdojo .
#   docker run --rm --gpus all -v "$PWD/runs:/work/runs" kerasdojo train CartPole-v1 --agent ppo
#   docker run --rm --gpus all kerasdojo info            # lists the GPU TensorFlow sees
#
# The same image on every node of a Ray cluster (Ray copies no code to its nodes), with a
# file system (/shared) that every node mounts at the same path, for the run directories.
# Ray 2.59+ turns token authentication on by default for local clusters (all clusters from
# 2.61, as Ray plans it): every node and every kerasdojo container needs RAY_AUTH_MODE=token
# and the cluster's token, handed over at `docker run` (a mounted file, or -e RAY_AUTH_TOKEN=...),
# never baked into this image. Make the token once, keep it private, copy it to each machine:
#   token:   docker run --rm --entrypoint ray kerasdojo get-auth-token --generate > ray_token && chmod 600 ray_token
#            AUTH="-e RAY_AUTH_MODE=token -e RAY_AUTH_TOKEN_PATH=/run/secrets/ray_token -v $PWD/ray_token:/run/secrets/ray_token:ro"
#   head:    docker run -d --gpus all --network host -v /shared:/shared $AUTH --entrypoint ray kerasdojo start --head --block --port 6379
#   workers: docker run -d --gpus all --network host -v /shared:/shared $AUTH --entrypoint ray kerasdojo start --address HEAD_IP:6379 --block
#   then:    docker run --rm --network host -v /shared:/shared $AUTH kerasdojo bench CartPole-v1 --seeds 16 --ray HEAD_IP:6379 --out /shared/bench/cp
# A cluster without authentication (RAY_AUTH_MODE=disabled on every node; a trusted network
# only) needs no $AUTH. A refused or missing token is one line from kerasdojo, exit code 2.
# Without --gpus all the image trains on the CPU. EXTRAS picks the optional parts.
FROM python:3.12-slim

ARG EXTRAS=gpu,ray,tune,box2d,video
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KERASDOJO_XLA_CACHE=/work/.xla-cache \
    TF_FORCE_GPU_ALLOW_GROWTH=true

# swig and a compiler, in case Box2D has no wheel for this Python; the rest comes as wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential swig \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/kerasdojo
COPY pyproject.toml README.md ./
COPY kerasdojo ./kerasdojo
RUN pip install ".[${EXTRAS}]"

WORKDIR /work
ENTRYPOINT ["kerasdojo"]
CMD ["--help"]
