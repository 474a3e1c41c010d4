"""freshrank's TensorFlow Serving compatible model server and ranking client.

The real `tensorflow_model_server` cannot be installed on freshrank's machines, so this package
serves the Pusher's model base path the way TF Serving does: same flags, same gRPC services (the
official `tensorflow-serving-api` protos and stubs), same REST API and JSON, same version
lifecycle. Production keeps using the real TF Serving on the same directory.

Modules, one job each:
  flags          the command line (TF Serving's flag names and defaults)
  protos         config protos that the pip package of tensorflow-serving-api lacks
  config         model config file, batching / monitoring / SSL config files
  versions       which version directories exist and which ones a policy wants
  tensors        TensorProto <-> numpy
  servable       one loaded SavedModel version: signatures, Predict/Classify/Regress, warmup
  batching       dynamic request batching
  manager        versions' lifecycle: polling, loads, retries, swaps, labels, status
  metrics        Prometheus counters and histograms
  rest_json      TF Serving's REST JSON formats
  grpc_service   PredictionService and ModelService
  predict_wire   gRPC Predict requests parsed without protobuf's map container
  executor       the gRPC handler threads (most recently idle thread first)
  rest           the HTTP server
  main           the `freshrank-model-server` entry point
  client         the ranking client (`freshrank rank`) and the warmup file writer

Importing this package is cheap; TensorFlow is imported by the modules that need it.
"""
