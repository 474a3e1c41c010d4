"""One loaded SavedModel version: its signatures, Predict/Classify/Regress/MultiInference, warmup.

A version is loaded the way TF Serving loads it: the MetaGraphDef tagged `serve` is imported
into its own graph and session (a "SavedModelBundle"), and requests run the signature's tensors
through that session. This keeps TF Serving's semantics exactly: the signature defs in
GetModelMetadata are the file's own, TF1 and TF2 SavedModels behave the same, custom ops (such as
tensorflow_text's) must be registered in the process, and inputs are fed by tensor name without
Python-side shape checks.

Request validation and error messages follow predict_util.cc, classifier.cc, regressor.cc,
multi_inference.cc and util.cc in tensorflow/serving.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import message as proto_message
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import config_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from serving import c_session, errors, tensors
from trainer.contract import WARMUP_RELATIVE_PATH

try:  # the ranker's graph uses tensorflow_text ops; they must be registered before loading
    import tensorflow_text  # noqa: F401
except ImportError:  # pragma: no cover - installed with the project
    pass

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
WARMUP_FILE = WARMUP_RELATIVE_PATH  # where TF Serving looks for a version's warmup requests
MAX_WARMUP_RECORDS = 1000

log = logging.getLogger("serving.servable")

# Runs a session callable: (feed tensor names, fetch tensor names, arrays) -> arrays.
Runner = Callable[[tuple, tuple, list], list]


@dataclass(frozen=True)
class Signature:
    """A SignatureDef flattened for fast lookup."""

    name: str
    method_name: str
    inputs: dict[str, Any]   # alias -> TensorInfo
    outputs: dict[str, Any]  # alias -> TensorInfo
    input_aliases: tuple[str, ...]  # sorted
    # What every well-formed Predict needs, computed once per version instead of per request:
    # (alias, tensor name, dtype) in alias order, and the outputs returned when no
    # output_filter is given (aliases in order, their tensor names).
    input_plan: tuple[tuple[str, str, int], ...] = ()
    output_aliases: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()

    @classmethod
    def from_def(cls, name: str, signature_def: Any) -> Signature:
        inputs = dict(signature_def.inputs)
        outputs = dict(signature_def.outputs)
        input_aliases = tuple(sorted(inputs))
        output_aliases = tuple(sorted(outputs))
        return cls(name, signature_def.method_name, inputs, outputs, input_aliases,
                   tuple((a, inputs[a].name, inputs[a].dtype) for a in input_aliases),
                   output_aliases, tuple(outputs[a].name for a in output_aliases))


@dataclass(frozen=True)
class LoadOptions:
    tags: tuple[str, ...] = ("serve",)
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    enable_warmup: bool = True
    method_name_check: bool = False
    # TensorFlow's pool threads spin after each run; on small machines they steal the CPU the
    # Python gRPC/REST threads need to send the response (measured: ~30% higher latency).
    disable_thread_spinning: bool = True
    # Load and run through TensorFlow's C API (serving/c_session.py): a load then never holds
    # the GIL, so requests keep being answered while a version swaps in, but each request costs
    # about 0.1 ms more (docs/serving-performance.md). Off by default: TensorFlow's Python
    # loader and session.
    use_c_api: bool = False
    # How much nicer the C API's background pool (variable restore, init ops, warmup) runs than
    # the request threads; the server passes --swap_load_nice.
    background_nice: int = 10


class Servable:
    """A loaded version. Thread-safe; reference-counted so unloads wait for in-flight requests."""

    def __init__(self, name: str, version: int, path: str, session: Any, meta_graph: Any,
                 method_name_check: bool = False):
        self.name = name
        self.version = version
        self.path = path
        self._session = session
        self._meta_graph = meta_graph
        self._method_name_check = method_name_check
        self.signatures = {
            key: Signature.from_def(key, sig) for key, sig in meta_graph.signature_def.items()
        }
        self._callables: dict[tuple, Any] = {}
        self._callables_lock = threading.Lock()
        self._refs = 0
        self._refs_cv = threading.Condition()
        self._closed = False
        # Replaced by the manager with a batching runner when batching is on.
        self.runner: Runner = self.run_direct

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, name: str, version: int, path: str, options: LoadOptions) -> Servable:
        """Loads and (optionally) warms up a version; raises ServingError on failure."""
        start = time.monotonic()
        session_config = config_pb2.ConfigProto(
            intra_op_parallelism_threads=options.intra_op_threads,
            inter_op_parallelism_threads=options.inter_op_threads,
            allow_soft_placement=True,
        )
        session_config.experimental.disable_thread_spinning = options.disable_thread_spinning
        try:
            if options.use_c_api and c_session.available():
                session: Any = c_session.CSession(path, options.tags, session_config,
                                                  options.background_nice)
            else:
                session = _PythonSession(path, options.tags, session_config)
        except BaseException as exc:
            raise _load_error(exc, path) from exc
        try:
            servable = cls(name, version, path, session, session.meta_graph, options.method_name_check)
            if options.enable_warmup:
                servable.run_warmup()
        except BaseException as exc:
            session.close()
            raise _load_error(exc, path) from exc
        log.info("Loaded servable version {name: %s version: %d} from %s in %.0f ms",
                 name, version, path, (time.monotonic() - start) * 1000)
        return servable

    def run_warmup(self) -> int:
        """Replays assets.extra/tf_serving_warmup_requests; any failing record fails the load."""
        warmup_path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(warmup_path):
            log.info("No warmup data file found at %s", warmup_path)
            return 0
        count = 0
        try:
            for record in tf.compat.v1.io.tf_record_iterator(warmup_path):
                count += 1
                if count > MAX_WARMUP_RECORDS:
                    raise errors.invalid_argument(
                        f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) "
                        f"at {warmup_path}"
                    )
                log_entry = prediction_log_pb2.PredictionLog()
                try:
                    log_entry.ParseFromString(record)
                except proto_message.DecodeError as exc:
                    raise errors.invalid_argument(
                        f"Failed to parse warmup record: {record[:64]!r} from {warmup_path}"
                    ) from exc
                self._run_warmup_entry(log_entry)
        except tf.errors.DataLossError as exc:
            raise errors.ServingError(
                errors.code_from_number(exc.error_code),
                f"{exc.message}. Please verify your warmup data is in TFRecord format.",
            ) from exc
        log.info("Finished reading warmup data for model at %s. Number of warmup records "
                 "read: %d.", warmup_path, count)
        return count

    def _run_warmup_entry(self, entry: Any) -> None:
        kind = entry.WhichOneof("log_type")
        if kind == "predict_log":
            self.predict(entry.predict_log.request, runner=self.run_background)
        elif kind == "classify_log":
            self.classify(entry.classify_log.request, runner=self.run_background)
        elif kind == "regress_log":
            self.regress(entry.regress_log.request, runner=self.run_background)
        elif kind == "multi_inference_log":
            self.multi_inference(entry.multi_inference_log.request, runner=self.run_background)
        else:
            raise errors.unimplemented(f"Unsupported log_type for warmup: {kind}")

    # -- lifetime ------------------------------------------------------------------------

    def acquire(self) -> None:
        with self._refs_cv:
            self._refs += 1

    def release(self) -> None:
        with self._refs_cv:
            self._refs -= 1
            if self._refs == 0:
                self._refs_cv.notify_all()

    def close(self, drain_timeout_s: float = 60.0) -> None:
        """Waits for in-flight requests (bounded), then frees the session."""
        deadline = time.monotonic() + drain_timeout_s
        with self._refs_cv:
            while self._refs > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("Unloading %s version %d with %d requests still running",
                                self.name, self.version, self._refs)
                    break
                self._refs_cv.wait(remaining)
            self._closed = True
        self._callables.clear()
        self._session.close()

    # -- running -------------------------------------------------------------------------

    def run_direct(self, feeds: tuple, fetches: tuple, arrays: list) -> list:
        """Runs tensors through the session, bypassing any batching."""
        return self._run(feeds, fetches, arrays, False)

    def run_background(self, feeds: tuple, fetches: tuple, arrays: list) -> list:
        """As run_direct, on the session's background pool (warmup: see CSession)."""
        return self._run(feeds, fetches, arrays, True)

    def _run(self, feeds: tuple, fetches: tuple, arrays: list, background: bool) -> list:
        key = (feeds, fetches, background)
        try:
            fn = self._callables.get(key)
            if fn is None:
                with self._callables_lock:
                    fn = self._callables.get(key)
                    if fn is None:
                        fn = self._callables[key] = self._session.make_callable(feeds, fetches, background)
            return fn(*arrays)
        except (tf.errors.OpError, c_session.CApiError) as exc:
            raise errors.from_exception(exc) from exc

    def signature(self, name: str) -> Signature | None:
        return self.signatures.get(name or DEFAULT_SIGNATURE)

    def predict(self, request: Any, runner: Runner | None = None) -> Any:
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.signatures.get(signature_name)
        if signature is None:
            raise errors.failed_precondition(
                f'Serving signature key "{signature_name}" not found.'
            )
        if self._method_name_check and signature.method_name not in (
                PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise errors.internal(
                "Expected prediction signature method_name to be one of {"
                f"{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. "
                f"Was: {signature.method_name}"
            )
        arrays = _plain_inputs(signature, request.inputs)
        if arrays is not None:
            feeds = tuple(name for _, name, _ in signature.input_plan)
        else:
            feeds, arrays = self._predict_inputs(signature, request.inputs)
        if request.output_filter:
            aliases = self._output_aliases(signature, request.output_filter)
            fetches = tuple(signature.outputs[a].name for a in aliases)
        else:
            aliases, fetches = signature.output_aliases, signature.output_names
        outputs = (runner or self.runner)(feeds, fetches, arrays)
        response = predict_pb2.PredictResponse()
        spec = response.model_spec
        spec.name = request.model_spec.name
        spec.signature_name = signature_name
        spec.version.value = self.version
        response_outputs = response.outputs
        for alias, array in zip(aliases, outputs, strict=True):
            tensors.to_tensor_proto(array, out=response_outputs[alias])
        return response

    def _predict_inputs(self, signature: Signature, inputs: Any) -> tuple[tuple, list]:
        """Decodes every input or raises TF Serving's error for the first problem found."""
        if len(inputs) != len(signature.inputs):
            sent = sorted(inputs.keys())
            expected = list(signature.input_aliases)
            extra = sorted(set(sent) - set(expected))
            missing = sorted(set(expected) - set(sent))
            raise errors.invalid_argument(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sent)}}}) != len({{{','.join(expected)}}}). "
                f"Sent extra: {{{','.join(extra)}}}. "
                f"Missing but required: {{{','.join(missing)}}}."
            )
        feeds = []
        arrays = []
        for index, alias in enumerate(sorted(inputs.keys())):
            info = signature.inputs.get(alias)
            if info is None:
                raise errors.invalid_argument(
                    f"input tensor alias not found in signature: {alias}. Inputs expected to "
                    f"be in the set {{{','.join(signature.input_aliases)}}}."
                )
            proto = inputs[alias]
            try:
                array = tensors.to_ndarray(proto)
            except (ValueError, TypeError, OverflowError) as exc:
                raise errors.invalid_argument(f"tensor parsing error: {alias}") from exc
            if info.dtype and proto.dtype != info.dtype:
                raise errors.invalid_argument(
                    f"Expects arg[{index}] to be {tensors.dtype_name(info.dtype)} but "
                    f"{tensors.dtype_name(proto.dtype)} is provided"
                )
            feeds.append(info.name)
            arrays.append(array)
        return tuple(feeds), arrays

    @staticmethod
    def _output_aliases(signature: Signature, output_filter: Sequence[str]) -> list[str]:
        if not output_filter:
            return sorted(signature.outputs)
        seen: set[str] = set()
        aliases = []
        for alias in output_filter:
            if alias not in signature.outputs:
                raise errors.invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to "
                    f"be in the set {{{','.join(sorted(signature.outputs))}}}."
                )
            if alias in seen:
                raise errors.invalid_argument(f"duplicate output tensor alias: {alias}")
            seen.add(alias)
            aliases.append(alias)
        return aliases

    # -- Classify / Regress / MultiInference ---------------------------------------------

    def _example_signature(self, model_spec: Any, method: str) -> Signature:
        signature_name = model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.signatures.get(signature_name)
        if signature is None:
            raise errors.invalid_argument(
                f"No signature was found with the name: {signature_name}"
            )
        if self._method_name_check and signature.method_name != method:
            kind = "classification" if method == CLASSIFY_METHOD else "regression"
            raise errors.invalid_argument(
                f"Expected {kind} signature method_name to be {method}. "
                f"Was: {signature.method_name}"
            )
        return signature

    def classify(self, request: Any, runner: Runner | None = None) -> Any:
        signature = self._example_signature(request.model_spec, CLASSIFY_METHOD)
        input_name, output_names = _classification_tensors(signature)
        examples = serialized_examples(request.input)
        outputs = (runner or self.runner)((input_name,), tuple(output_names), [examples])
        response = classification_pb2.ClassificationResponse()
        _classification_result(signature, len(examples), output_names, outputs, response.result)
        _echo_spec(response.model_spec, request.model_spec, self.version)
        return response

    def regress(self, request: Any, runner: Runner | None = None) -> Any:
        signature = self._example_signature(request.model_spec, REGRESS_METHOD)
        input_name, output_names = _regression_tensors(signature)
        examples = serialized_examples(request.input)
        outputs = (runner or self.runner)((input_name,), tuple(output_names), [examples])
        response = regression_pb2.RegressionResponse()
        _regression_result(signature, len(examples), output_names, outputs, response.result)
        _echo_spec(response.model_spec, request.model_spec, self.version)
        return response

    def multi_inference(self, request: Any, runner: Runner | None = None) -> Any:
        if not request.tasks:
            raise errors.invalid_argument("MultiInferenceRequest must contain at least one task")
        model_name = ""
        seen: set[str] = set()
        plans = []
        input_names: set[str] = set()
        output_names: set[str] = set()
        for task in request.tasks:
            if not task.model_spec.name:
                raise errors.invalid_argument("Found ModelSpec with an empty model name.")
            if not model_name:
                model_name = task.model_spec.name
            elif model_name != task.model_spec.name:
                raise errors.invalid_argument(
                    "All ModelSpecs in a MultiInferenceRequest must access the same model name."
                )
            signature_name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if signature_name in seen:
                raise errors.invalid_argument(
                    f"Duplicate evaluation of signature: {signature_name}"
                )
            seen.add(signature_name)
            signature = self.signatures.get(signature_name)
            if signature is None:
                raise errors.invalid_argument(
                    f"Requested signature not found in model graph: {signature_name}"
                )
            if task.method_name == CLASSIFY_METHOD:
                task_input, task_outputs = _classification_tensors(signature)
            elif task.method_name == REGRESS_METHOD:
                task_input, task_outputs = _regression_tensors(signature)
            else:
                raise errors.unimplemented(
                    f"Unsupported signature method_name: {task.method_name}"
                )
            # TF2 SavedModels give every signature its own placeholder; like TF Serving, the
            # same serialized examples are fed to each of them in one session run.
            input_names.add(task_input)
            output_names.update(task_outputs)
            plans.append((task, signature))
        feeds = tuple(sorted(input_names))
        fetches = sorted(output_names)
        examples = serialized_examples(request.input)
        outputs = (runner or self.runner)(feeds, tuple(fetches), [examples] * len(feeds))
        response = inference_pb2.MultiInferenceResponse()
        for task, signature in plans:
            result = response.results.add()
            if task.method_name == CLASSIFY_METHOD:
                _classification_result(signature, len(examples), fetches, outputs,
                                       result.classification_result)
            else:
                _regression_result(signature, len(examples), fetches, outputs,
                                   result.regression_result)
            _echo_spec(result.model_spec, task.model_spec, self.version)
        return response

    def signature_def_map(self) -> Any:
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in self._meta_graph.signature_def.items():
            signature_map.signature_def[key].CopyFrom(signature_def)
        return signature_map


# -- helpers ---------------------------------------------------------------------------------


def _plain_inputs(signature: Signature, inputs: Any) -> list | None:
    """The inputs of a well-formed request, decoded in the signature's alias order; None when
    anything is off (an alias missing or extra, a dtype that differs, a tensor that does not
    decode), so that `Servable._predict_inputs` finds the problem and words its error exactly as
    TF Serving does. Separate because nearly every request is well formed, and this path does
    only what such a request needs."""
    if len(inputs) != len(signature.input_plan):
        return None
    arrays = []
    for alias, _, dtype in signature.input_plan:
        if alias not in inputs:  # `inputs[alias]` would insert an empty tensor
            return None
        proto = inputs[alias]
        if dtype and proto.dtype != dtype:
            return None
        try:
            arrays.append(tensors.to_ndarray(proto))
        except (ValueError, TypeError, OverflowError):
            return None
    return arrays



class _PythonSession:
    """TensorFlow's Python loader and session behind CSession's interface (`use_c_api=False`)."""

    def __init__(self, path: str, tags: Sequence[str], config: Any):
        import warnings

        self._callables: dict[tuple, Callable] = {}
        self._callables_lock = threading.Lock()
        graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        try:
            with graph.as_default(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.meta_graph = tf.compat.v1.saved_model.loader.load(self._session, list(tags), path)
        except BaseException:
            self._session.close()
            raise

    def make_callable(self, feeds: Sequence[str], fetches: Sequence[str],
                      background: bool = False) -> Callable:
        """One callable per (feeds, fetches), whatever `background` says (this session has one
        pool). Each callable TensorFlow makes builds its own executors, graph optimisation
        included: a second one for the requests after warmup had built the first would make the
        first request after every swap pay that again (570 ms for the default ranker)."""
        del background
        key = (tuple(feeds), tuple(fetches))
        with self._callables_lock:
            callable_ = self._callables.get(key)
            if callable_ is None:
                options = config_pb2.CallableOptions()
                options.feed.extend(feeds)
                options.fetch.extend(fetches)
                callable_ = self._callables[key] = self._session._make_callable_from_options(options)  # noqa: SLF001
        return callable_

    def close(self) -> None:
        self._session.close()


def _load_error(exc: BaseException, path: str) -> errors.ServingError:
    if isinstance(exc, errors.ServingError):
        return exc
    if isinstance(exc, (tf.errors.OpError, c_session.CApiError)):
        return errors.from_exception(exc)
    if isinstance(exc, OSError):
        return errors.not_found(
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
            f"{path}: {exc}"
        )
    if isinstance(exc, proto_message.DecodeError):
        return errors.ServingError(grpc.StatusCode.DATA_LOSS,
                                   f"Could not parse SavedModel at {path}: {exc}")
    if isinstance(exc, RuntimeError) and "could not be found in SavedModel" in str(exc):
        return errors.not_found(str(exc))
    return errors.unknown(f"Failed to load SavedModel at {path}: {type(exc).__name__}: {exc}")


def _echo_spec(out: Any, requested: Any, version: int) -> None:
    """util.cc MakeModelSpec: name, the resolved signature name and the version."""
    out.name = requested.name
    out.signature_name = requested.signature_name or DEFAULT_SIGNATURE
    out.version.value = version


def serialized_examples(model_input: Any) -> np.ndarray:
    """util.cc InputToSerializedExampleTensor: context bytes + example bytes merge them."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        values = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = model_input.example_list_with_context
        context = with_context.context.SerializeToString()
        values = [context + e.SerializeToString() for e in with_context.examples]
    else:
        values = []
    if not values:
        raise errors.invalid_argument("Input is empty.")
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _classification_tensors(signature: Signature) -> tuple[str, list[str]]:
    if len(signature.inputs) != 1:
        raise errors.invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise errors.invalid_argument(
            f"Expected one or two output Tensors, found {len(signature.outputs)}"
        )
    if "inputs" not in signature.inputs:
        raise errors.invalid_argument(
            f"No classification inputs found in SignatureDef: {signature.name}"
        )
    names = [signature.outputs[k].name for k in ("classes", "scores") if k in signature.outputs]
    if not names:
        raise errors.invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" '
            f'or "scores". Signature was: {signature.name}'
        )
    return signature.inputs["inputs"].name, names


def _regression_tensors(signature: Signature) -> tuple[str, list[str]]:
    if len(signature.inputs) != 1:
        raise errors.invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise errors.invalid_argument("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise errors.invalid_argument(
            f"No regression inputs found in SignatureDef: {signature.name}"
        )
    if "outputs" not in signature.outputs:
        raise errors.invalid_argument(
            f"No regression outputs found in SignatureDef: {signature.name}"
        )
    return signature.inputs["inputs"].name, [signature.outputs["outputs"].name]


def _shape_string(array: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in array.shape) + "]"


def _classification_result(signature: Signature, num_examples: int, names: Sequence[str],
                           outputs: Sequence[np.ndarray], result: Any) -> None:
    by_name = dict(zip(names, outputs, strict=True))
    classes = by_name.get(signature.outputs["classes"].name) if "classes" in signature.outputs \
        else None
    scores = by_name.get(signature.outputs["scores"].name) if "scores" in signature.outputs \
        else None
    for array, kind in ((classes, "classes"), (scores, "scores")):
        if array is None:
            continue
        if array.ndim != 2:
            raise errors.invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got {_shape_string(array)}"
            )
        if kind == "classes" and array.dtype != object:
            raise errors.invalid_argument(
                f"Expected classes Tensor of DT_STRING. Got: {_dtype_enum_name(array)}"
            )
        if kind == "scores" and array.dtype != np.float32:
            raise errors.invalid_argument(
                f"Expected scores Tensor of DT_FLOAT. Got: {_dtype_enum_name(array)}"
            )
        if array.shape[0] != num_examples:
            raise errors.invalid_argument(
                f"Expected {kind} output batch size of {num_examples}. Got: {array.shape[0]}"
            )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise errors.invalid_argument(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    num_classes = (classes if classes is not None else scores).shape[1]
    for i in range(num_examples):
        classifications = result.classifications.add()
        for c in range(num_classes):
            entry = classifications.classes.add()
            if classes is not None:
                label = classes[i, c]
                entry.label = label.decode("utf-8", "replace") if isinstance(label, bytes) \
                    else str(label)
            if scores is not None:
                entry.score = float(scores[i, c])


def _regression_result(signature: Signature, num_examples: int, names: Sequence[str],
                       outputs: Sequence[np.ndarray], result: Any) -> None:
    output_name = signature.outputs["outputs"].name
    by_name = dict(zip(names, outputs, strict=True))
    array = by_name.get(output_name)
    if array is None:
        raise errors.invalid_argument(f"Could not find output tensor '{output_name}'")
    if not (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        raise errors.invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            f"{_shape_string(array)}"
        )
    if array.shape[0] != num_examples:
        raise errors.invalid_argument(
            f"Input batch size did not match output batch size: {num_examples} vs. "
            f"{array.shape[0]}"
        )
    if array.dtype != np.float32:
        raise errors.invalid_argument(
            f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_enum_name(array)}"
        )
    for value in array.reshape(-1).tolist():
        result.regressions.add().value = value


def _dtype_enum_name(array: np.ndarray) -> str:
    try:
        return types_pb2.DataType.Name(tensors.proto_dtype(array))
    except ValueError:
        return str(array.dtype)
