"""TF Serving's REST JSON formats (util/json_tensor.cc, http_rest_api_util.cc).

Predict takes "instances" (row format: a list, one entry per batch element) or "inputs"
(columnar: whole tensors), never both, and answers "predictions" or "outputs" respectively; a
single output drops its name. Binary strings travel as {"b64": ...}; outputs whose name ends in
"_bytes" are always sent that way. Classify/Regress take {signature_name, context, examples} of
tf.Example-like objects and answer "results". Floats are written the way TF Serving writes them
(shortest form that round-trips the float32, whole numbers as "3.0").
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np
from google.protobuf import json_format
from tensorflow.core.example import feature_pb2
from tensorflow.core.framework import types_pb2

from serving import errors, tensors

ROW = "row"
COLUMNAR = "columnar"
MAX_RANK = 254  # TensorFlow's largest rank; deeper JSON nesting is rejected

_INT_RANGES = {
    types_pb2.DT_INT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_UINT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT16: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_DOUBLE_MAX = float(np.finfo(np.float64).max)


# -- parsing ---------------------------------------------------------------------------------


def parse_object(body: bytes) -> dict:
    """util ParseJson: the body must be one JSON object."""
    if not body or not body.strip():
        raise errors.invalid_argument("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except RecursionError as exc:
        raise errors.invalid_argument("JSON Parse error: document nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.invalid_argument(f"JSON Parse error: {exc}") from exc
    if not isinstance(doc, dict):
        raise errors.invalid_argument(f"JSON Value: {value_to_string(doc)} Is not object")
    return doc


def value_to_string(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        text = repr(value)
    return text if len(text) <= 512 else text[:512] + "..."


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def signature_name(doc: dict) -> str:
    value = doc.get("signature_name", "")
    if not isinstance(value, str):
        raise errors.invalid_argument(
            f"JSON Value: {value_to_string(doc)} not formatted correctly. 'signature_name' key "
            "must be a string value."
        )
    return value


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(value: Any) -> bytes:
    if not _is_b64(value):
        raise errors.invalid_argument(
            f"JSON Value: {value_to_string(value)} not formatted correctly for base64 data"
        )
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.invalid_argument("Unable to base64 decode") from exc


def _type_error(value: Any, dtype: int) -> errors.ServingError:
    return errors.invalid_argument(
        f"JSON Value: {value_to_string(value)} Type: {json_type(value)} is not of expected type: "
        f"{tensors.dtype_name(dtype)}"
    )


def _lossless(value: Any, float_max: float, int_max: int) -> bool:
    if isinstance(value, int):
        return abs(value) <= int_max
    if not math.isfinite(value):
        return True
    return -float_max <= value <= float_max


def _scalar(value: Any, dtype: int) -> Any:
    """AddValueToTensor: one JSON leaf converted to the signature's dtype."""
    if isinstance(value, dict):
        if dtype == types_pb2.DT_STRING:
            return _decode_b64(value)
        raise _type_error(value, dtype)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_HALF):
        if not is_number:
            raise _type_error(value, dtype)
        if not _lossless(value, _FLOAT32_MAX, (1 << 24) - 1):
            raise errors.invalid_argument(
                f"Cannot convert JSON value: {value_to_string(value)} to float without loss of "
                "precision."
            )
        return float(value)
    if dtype == types_pb2.DT_DOUBLE:
        if not is_number:
            raise _type_error(value, dtype)
        if not _lossless(value, _DOUBLE_MAX, (1 << 53) - 1):
            raise errors.invalid_argument(
                f"Cannot convert JSON value: {value_to_string(value)} to double without loss of "
                "precision."
            )
        return float(value)
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8", "surrogatepass")
    raise errors.unimplemented(
        f"Conversion of JSON Value: {value_to_string(value)} to type: "
        f"{tensors.dtype_name(dtype)}"
    )


def _dense_shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) > MAX_RANK:
            raise errors.invalid_argument(f"JSON list nested deeper than {MAX_RANK} levels")
        if not value:
            break
        value = value[0]
    return shape


def _collect(value: Any, level: int, shape: list[int], dtype: int, out: list) -> None:
    """FillTensorProto: checks that the nested lists form a dense tensor of `shape`."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise errors.invalid_argument(
                f"JSON Value: {value_to_string(value)} found at incorrect level: {level + 1} in "
                f"the JSON DOM. Expected at level: {rank}"
            )
        out.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise errors.invalid_argument(
            f"Encountered list at unexpected level: {level} expected < {rank}"
        )
    if len(value) != shape[level]:
        raise errors.invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected "
            f"size: {shape[level]}"
        )
    for item in value:
        _collect(item, level + 1, shape, dtype, out)


def _tensor_values(value: Any, dtype: int) -> tuple[list[int], list]:
    shape = _dense_shape(value)
    values: list = []
    _collect(value, 0, shape, dtype, values)
    return shape, values


def _fill_proto(proto: Any, dtype: int, shape: list[int], values: list) -> None:
    proto.dtype = dtype
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    if dtype == types_pb2.DT_HALF:
        proto.half_val.extend(np.array(values, dtype=np.float16).view(np.uint16).tolist())
    elif dtype in (types_pb2.DT_INT8, types_pb2.DT_UINT8, types_pb2.DT_INT16,
                   types_pb2.DT_INT32):
        np_dtype = tensors.DTYPES[dtype][0]  # range check as TF casts
        try:
            proto.int_val.extend(np.array(values, dtype=np.int64).astype(np_dtype).tolist())
        except (OverflowError, ValueError) as exc:
            raise errors.invalid_argument(f"Value out of range for {tensors.dtype_name(dtype)}") \
                from exc
    else:
        getattr(proto, tensors.DTYPES[dtype][1]).extend(values)


def fill_predict_inputs(doc: dict, input_infos: dict[str, Any], inputs: Any) -> str:
    """FillPredictRequestFromJson; returns the request format (ROW or COLUMNAR)."""
    if not input_infos:
        raise errors.invalid_argument("Failed to get input map for signature")
    has_instances = "instances" in doc
    has_inputs = "inputs" in doc
    if has_instances and has_inputs:
        raise errors.invalid_argument(
            f"JSON Value: {value_to_string(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise errors.invalid_argument(
                f"JSON Value: {value_to_string(doc)} Excepting 'instances' to be an list/array"
            )
        if not instances:
            raise errors.invalid_argument(
                f"JSON Value: {value_to_string(doc)} No values in 'instances' array"
            )
        _fill_from_instances(instances, input_infos, inputs)
        return ROW
    if has_inputs:
        _fill_from_inputs(doc["inputs"], input_infos, inputs)
        return COLUMNAR
    raise errors.invalid_argument("Missing 'inputs' or 'instances' key")


def _is_element_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _fill_from_instances(instances: list, infos: dict[str, Any], inputs: Any) -> None:
    if not isinstance(instances[0], dict) and len(infos) > 1:
        raise errors.invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    objects = _is_element_object(instances[0])
    names = sorted(infos)
    collected: dict[str, list] = {}
    item_shapes: dict[str, list[int]] = {}

    def add(name: str, item: Any) -> None:
        if name not in infos:
            raise errors.invalid_argument(f"JSON object: does not have named input: {name}")
        shape, values = _tensor_values(item, infos[name].dtype)
        if name not in item_shapes:
            item_shapes[name] = shape
            collected[name] = []
        elif shape != item_shapes[name]:
            expected = item_shapes[name]
            if _product(expected) != len(values):
                raise errors.invalid_argument(
                    f"Expecting tensor size: {_product(expected)} but got: {len(values)}"
                )
            raise errors.invalid_argument(
                f"Expecting shape [{','.join(map(str, expected))}] but got: "
                f"[{','.join(map(str, shape))}]"
            )
        collected[name].extend(values)

    for index, element in enumerate(instances):
        if objects:
            if not _is_element_object(element):
                raise errors.invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for key, item in element.items():
                try:
                    add(key, item)
                except errors.ServingError as exc:
                    raise errors.invalid_argument(
                        f"Failed to process element: {index} key: {key} of 'instances' list. "
                        f"Error: Invalid argument: {exc.message}"
                    ) from exc
            if set(element) != set(names):
                raise errors.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{value_to_string(element)} keys must be equal to: {','.join(names)}"
                )
        else:
            if _is_element_object(element):
                raise errors.invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                add(names[0], element)
            except errors.ServingError as exc:
                raise errors.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. Error: Invalid "
                    f"argument: {exc.message}"
                ) from exc
    for name, values in collected.items():
        _fill_proto(inputs[name], infos[name].dtype, [len(instances)] + item_shapes[name], values)


def _fill_from_inputs(value: Any, infos: dict[str, Any], inputs: Any) -> None:
    if not isinstance(value, dict) or _is_b64(value):
        if len(infos) > 1:
            raise errors.invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        name = next(iter(sorted(infos)))
        shape, values = _tensor_values(value, infos[name].dtype)
        _fill_proto(inputs[name], infos[name].dtype, shape, values)
        return
    for name in sorted(infos):
        if name not in value:
            raise errors.invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        shape, values = _tensor_values(value[name], infos[name].dtype)
        _fill_proto(inputs[name], infos[name].dtype, shape, values)


def _product(dims: list[int]) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


# -- tf.Example JSON (Classify / Regress) ----------------------------------------------------


def fill_example_request(doc: dict, request: Any) -> None:
    """FillClassifyRegressRequestFromJson."""
    request.model_spec.signature_name = signature_name(doc)
    target = request.input
    has_context = "context" in doc
    if has_context:
        _make_example(doc["context"], target.example_list_with_context.context)
    if "examples" not in doc:
        raise errors.invalid_argument(
            f"JSON Value: {value_to_string(doc)} When method is classify, key 'examples' is "
            "expected and was not found"
        )
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise errors.invalid_argument(
            f"JSON Value: {value_to_string(doc)} Expecting 'examples' value to be an list/array"
        )
    if not examples:
        raise errors.invalid_argument(
            f"JSON Value: {value_to_string(doc)} 'examples' value is an empty array"
        )
    container = (target.example_list_with_context.examples if has_context
                 else target.example_list.examples)
    for value in examples:
        _make_example(value, container.add())


def _make_example(value: Any, example: Any) -> None:
    if not isinstance(value, dict):
        raise errors.invalid_argument(
            f"Example must be JSON object but got JSON {json_type(value)}"
        )
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64",
               None: "UNKNOWN"}


def _check_kind(feature: Any, name: str, kind: str) -> None:
    current = feature.WhichOneof("kind")
    if current is not None and current != kind:
        raise errors.invalid_argument(
            f"Unexpected element type in feature: {name} expecting type: "
            f"{_KIND_NAMES[current]}"
        )


def _add_feature_value(value: Any, name: str, feature: Any) -> None:
    if value is None or isinstance(value, list) or (isinstance(value, dict)
                                                      and not _is_b64(value)):
        raise errors.invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_type(value)}"
        )
    if isinstance(value, bool):
        _check_kind(feature, name, "int64_list")
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, dict):
        _check_kind(feature, name, "bytes_list")
        feature.bytes_list.value.append(_decode_b64(value))
    elif isinstance(value, str):
        _check_kind(feature, name, "bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, float) or (isinstance(value, int) and abs(value) >= 2**64):
        _check_kind(feature, name, "float_list")
        value = float(value)
        if not _lossless(value, _FLOAT32_MAX, 0):
            raise errors.invalid_argument(
                f"Cannot convert JSON value: {value_to_string(value)} to float without loss of "
                "precision."
            )
        feature.float_list.value.append(value)
    else:
        _check_kind(feature, name, "int64_list")
        if value >= 2**63 or value < -(2**63):
            raise errors.invalid_argument(
                f"Feature: {name} has uint64 element. Only int64 is supported."
            )
        feature.int64_list.value.append(value)


# -- writing ---------------------------------------------------------------------------------


def format_float(value: float, dtype: int = types_pb2.DT_FLOAT) -> str:
    """WriteDecimal: shortest "%g" form that round-trips, "3.0" for whole numbers."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    if dtype == types_pb2.DT_DOUBLE:
        if float(text) != value:
            text = f"{value:.17g}"
    elif np.float32(float(text)) != np.float32(value):
        text = f"{value:.9g}"
    if "." not in text and "e" not in text and "n" not in text:
        text += ".0"
    return text


def _write_values(array: Any, as_bytes: bool, dtype: int) -> str:
    if not isinstance(array, np.ndarray):  # an element of an object (string) array
        return _write_scalar(array, as_bytes, dtype)
    if array.ndim == 0:
        return _write_scalar(array.item() if array.dtype != object else array[()], as_bytes,
                             dtype)
    return "[" + ",".join(_write_values(sub, as_bytes, dtype) for sub in array) + "]"


def _write_scalar(value: Any, as_bytes: bool, dtype: int) -> str:
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF):
        return format_float(float(value), dtype)
    if dtype == types_pb2.DT_BOOL:
        return "true" if value else "false"
    if dtype == types_pb2.DT_STRING:
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        if not as_bytes:
            try:
                return json.dumps(raw.decode("utf-8"), ensure_ascii=False)
            except UnicodeDecodeError:
                pass  # not text: fall back to base64 rather than emit invalid JSON
        return '{"b64":' + json.dumps(base64.b64encode(raw).decode("ascii")) + "}"
    return str(int(value))


def _output_arrays(outputs: Any) -> list[tuple[str, np.ndarray, int]]:
    arrays = []
    for name in sorted(outputs):
        proto = outputs[name]
        arrays.append((name, tensors.to_ndarray(proto, max_elements=1 << 62), proto.dtype))
    return arrays


def predict_response_json(outputs: Any, request_format: str) -> str:
    """MakeJsonFromTensors for a PredictResponse's outputs map."""
    if not outputs:
        raise errors.invalid_argument("Cannot convert empty tensor map to JSON")
    arrays = _output_arrays(outputs)
    multiple = len(arrays) > 1
    if request_format == COLUMNAR:
        parts = []
        for name, array, dtype in arrays:
            text = _write_values(array, name.endswith("_bytes"), dtype)
            parts.append(f"{json.dumps(name)}:{text}" if multiple else text)
        body = "{" + ",".join(parts) + "}" if multiple else parts[0]
        return '{"outputs":' + body + "}"
    batch = -1
    for name, array, _ in arrays:
        if array.ndim == 0:
            raise errors.invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise errors.invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: "
                f"{batch}"
            )
        batch = array.shape[0]
    rows = []
    for i in range(batch):
        if multiple:
            rows.append("{" + ",".join(
                f"{json.dumps(name)}:{_write_values(array[i], name.endswith('_bytes'), dtype)}"
                for name, array, dtype in arrays) + "}")
        else:
            name, array, dtype = arrays[0]
            rows.append(_write_values(array[i], name.endswith("_bytes"), dtype))
    return '{"predictions":[' + ",".join(rows) + "]}"


def classification_json(result: Any) -> str:
    if not result.classifications:
        raise errors.invalid_argument("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classifications in result.classifications:
        rows.append("[" + ",".join(
            f"[{json.dumps(c.label, ensure_ascii=False)},{format_float(c.score)}]"
            for c in classifications.classes) + "]")
    return '{"results":[' + ",".join(rows) + "]}"


def regression_json(result: Any) -> str:
    if not result.regressions:
        raise errors.invalid_argument("Cannot convert empty RegressionResults to JSON")
    return '{"results":[' + ",".join(format_float(r.value) for r in result.regressions) + "]}"


def status_json(response: Any) -> str:
    """GetModelStatusResponse with proto field names and default values (ToJsonString)."""
    body = json_format.MessageToDict(response, preserving_proto_field_name=True,
                                     including_default_value_fields=True)
    return json.dumps(body, indent=1)


def metadata_json(model_spec: Any, signature_def_map: Any) -> str:
    """GetModelMetadataResponse as TF Serving prints it: the Any unpacked to SignatureDefMap."""
    spec = json_format.MessageToDict(model_spec, preserving_proto_field_name=True,
                                     including_default_value_fields=True)
    signatures = json_format.MessageToDict(signature_def_map, preserving_proto_field_name=True,
                                           including_default_value_fields=True)
    return json.dumps({"model_spec": spec, "metadata": {"signature_def": signatures}}, indent=1)


def error_json(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)
