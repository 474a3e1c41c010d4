# syntax=docker/dockerfile:1
# The freshrank pipeline image: the package and its pinned TFX 1.16 stack (setup.py).
#
# Every step of the compiled Kubeflow / Vertex pipeline runs it (`freshrank compile --image`),
# the Vertex Trainer's worker pools run it, and it doubles as the Beam worker image for
# Dataflow (--sdk_container_image) and Flink / Spark (--environment_type=DOCKER): the workers
# need tfx-bsl, TFMA and tensorflow_text, which only this image has.
#
#   docker build -t REGISTRY/freshrank:0.1.0 .
#   docker build --build-arg GPU=1 -t REGISTRY/freshrank:0.1.0-gpu .   # CUDA wheels for GPU Trainers
ARG PYTHON_IMAGE=python:3.10-slim-bookworm
# Must equal the apache-beam pin in setup.py: workers and launcher speak the same Beam.
ARG BEAM_VERSION=2.59.0

FROM apache/beam_python3.10_sdk:${BEAM_VERSION} AS beam

FROM ${PYTHON_IMAGE}
ARG GPU=0
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2
# tfx_pipeline/kubeflow.py (IMAGE_SOURCE_DIR) compiles the schema path inside this directory.
WORKDIR /freshrank

# 1. The pinned stack alone, in a layer that survives source edits: setup.py lists it, and with
#    no package folders copied yet `pip install .` installs only the dependencies.
#    setuptools < 81 keeps pkg_resources, which TensorBoard 2.16 imports.
COPY setup.py ./
RUN pip install --upgrade pip wheel "setuptools<81" \
 && pip install . \
 && pip uninstall -y freshrank \
 && if [ "$GPU" = "1" ]; then pip install "tensorflow[and-cuda]==2.16.2"; fi

# 2. The package (source kept at /freshrank too: the curated schema is read from there).
COPY . .
RUN pip install --no-deps . \
 && python -c "import tensorflow_text, tfx_pipeline.pipeline, tfx_pipeline.evaluator_module, trainer.task" \
 && test -f /freshrank/schemas/schema.pbtxt

# Beam's worker boot program. Kubeflow and Vertex steps give their own command
# (python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor), which replaces it.
COPY --from=beam /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
