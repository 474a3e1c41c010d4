"""freshrank: continuous, incremental training of BERT rankers for e-commerce search on TFX.

The TFX 1.16 stack is pinned exactly: it is the newest one whose wheels all install on
Python 3.10, and its pieces (TFX, TFMA, TFDV, TFT, tfx-bsl, ML Metadata, Beam) only work
together at these versions. Beam is pinned because pip's newest pick drops `dill`,
which tfx-bsl 1.16 imports.
"""
from setuptools import find_packages, setup

STACK = [
    "tfx==1.16.0",
    "tensorflow==2.16.2",
    "tensorflow-text==2.16.1",
    "tf-keras==2.16.0",
    "tensorflow-serving-api==2.16.1",
    "apache-beam[gcp]==2.59.0",
    "dill==0.3.1.1",
    "ml-metadata==1.16.0",
    "tensorflow-model-analysis==0.47.1",
    "tensorflow-data-validation==1.16.1",
    "tensorflow-transform==1.16.0",
    "tfx-bsl==1.16.1",
    "tensorboard==2.16.2",
    "protobuf==3.20.3",
    "numpy==1.26.4",
    "pyarrow==10.0.1",
    # Kubeflow Pipelines V2 compilation (KubeflowV2DagRunner); 2.5.0 keeps protobuf 3.20.
    "kfp==2.5.0",
    "kfp-pipeline-spec==0.2.2",
    # Command line, progress and plots.
    "click==8.5.1",
    "tqdm==4.70.1",
    "matplotlib==3.10.9",
    "grpcio==1.85.3",
    # Hugging Face checkpoints (--init-checkpoint): model.safetensors read into numpy, no PyTorch.
    "safetensors==0.8.0",
    # TensorBoard 2.16 imports pkg_resources, which setuptools 81+ no longer ships.
    "setuptools==80.9.0",
]

DEV = [
    "pytest==9.2.0",
    "pytest-timeout==2.4.0",
    # `make test` runs the suite on two processes (Makefile TEST_WORKERS).
    "pytest-xdist==3.8.0",
    "execnet==2.1.2",
    "hypothesis==6.168.5",
    "ruff==0.17.6",
    # The model-server tests watch process trees and make TLS certificates.
    "psutil==7.2.2",
    "cryptography==50.0.2",
]

setup(
    name="freshrank",
    version="0.1.0",
    description="Keep a BERT search ranker fresh with incremental TFX training and TF Serving.",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["freshrank*", "tfx_pipeline*", "trainer*", "serving*", "schemas*"]),
    package_data={"schemas": ["*.pbtxt"]},
    install_requires=STACK,
    extras_require={"dev": DEV},
    entry_points={
        "console_scripts": [
            "freshrank=freshrank.cli:main",
            "freshrank-model-server=serving.main:main",
        ]
    },
)
