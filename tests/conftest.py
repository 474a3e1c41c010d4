import os

# Before any test module imports TensorFlow: tf-keras is the Keras of the TFX 1.16 stack.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
