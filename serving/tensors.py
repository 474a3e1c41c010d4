"""TensorProto <-> numpy conversions for request inputs and response outputs.

Responses use the typed value fields (`float_val`, `string_val`, ...) rather than
`tensor_content`, as TF Serving does by default (AsProtoField), so clients reading
`outputs['y'].float_val` work. Request parsing accepts both encodings, follows TensorFlow's
Tensor::FromProto rules (fewer values than elements repeat the last one), and refuses shapes
that would allocate absurd amounts of memory, so a crafted request cannot take the server down.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

# Largest tensor a request may ask the server to materialise (elements).
MAX_ELEMENTS = 1 << 26

# dtype enum -> (numpy dtype, TensorProto value field)
DTYPES: dict[int, tuple[Any, str]] = {
    types_pb2.DT_FLOAT: (np.float32, "float_val"),
    types_pb2.DT_DOUBLE: (np.float64, "double_val"),
    types_pb2.DT_INT32: (np.int32, "int_val"),
    types_pb2.DT_INT16: (np.int16, "int_val"),
    types_pb2.DT_INT8: (np.int8, "int_val"),
    types_pb2.DT_UINT8: (np.uint8, "int_val"),
    types_pb2.DT_UINT16: (np.uint16, "int_val"),
    types_pb2.DT_INT64: (np.int64, "int64_val"),
    types_pb2.DT_UINT32: (np.uint32, "uint32_val"),
    types_pb2.DT_UINT64: (np.uint64, "uint64_val"),
    types_pb2.DT_BOOL: (np.bool_, "bool_val"),
    types_pb2.DT_STRING: (object, "string_val"),
    types_pb2.DT_HALF: (np.float16, "half_val"),
}

_DTYPE_BY_NUMPY = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int16): types_pb2.DT_INT16,
    np.dtype(np.int8): types_pb2.DT_INT8,
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.uint16): types_pb2.DT_UINT16,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.uint32): types_pb2.DT_UINT32,
    np.dtype(np.uint64): types_pb2.DT_UINT64,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
    np.dtype(np.float16): types_pb2.DT_HALF,
}


_FLOAT32 = np.dtype(np.float32)


def dtype_name(dtype: int) -> str:
    """TensorFlow's DataTypeString(): DT_FLOAT -> 'float'."""
    try:
        return types_pb2.DataType.Name(dtype)[3:].lower()
    except ValueError:
        return f"unknown dtype {dtype}"


def shape_of(proto_shape: Any) -> tuple[int, ...]:
    if proto_shape.unknown_rank:
        raise ValueError("unknown rank")
    dims = tuple(int(d.size) for d in proto_shape.dim)
    if any(d < 0 for d in dims):
        raise ValueError("negative dimension")
    return dims


def to_ndarray(proto: Any, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """Decodes a request TensorProto; raises ValueError on anything TensorFlow would reject."""
    fast = _vector_fast_path(proto, max_elements)
    if fast is not None:
        return fast
    spec = DTYPES.get(proto.dtype)
    if spec is None:
        raise ValueError(f"unsupported dtype {dtype_name(proto.dtype)}")
    np_dtype, field_name = spec
    shape = shape_of(proto.tensor_shape)
    count = 1
    for d in shape:
        count *= d
        if count > max_elements:
            raise ValueError(f"tensor has more than {max_elements} elements")
    if proto.dtype == types_pb2.DT_STRING:
        values = list(proto.string_val)
        if proto.tensor_content:
            raise ValueError("string tensors cannot use tensor_content")
        return _fill(np.array(values, dtype=object) if values else np.array([], dtype=object),
                     shape, count, np_dtype)
    if proto.tensor_content:
        dtype = np.dtype(np_dtype)
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise ValueError("tensor_content size does not match shape")
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape).copy()
    raw = getattr(proto, field_name)
    if proto.dtype == types_pb2.DT_HALF:
        values = np.array(raw, dtype=np.uint16).view(np.float16)
    else:
        values = np.array(raw, dtype=np_dtype)
    return _fill(values, shape, count, np_dtype)


def _vector_fast_path(proto: Any, max_elements: int) -> np.ndarray | None:
    """The shape every ranking request has: a vector whose values are all there (strings in
    `string_val`, numbers in `tensor_content` or their value field). Decoded with the fewest
    Python steps, because a 50-candidate request carries six of them; anything else (other
    ranks, repeated-last-value filling, malformed tensors) returns None and takes the general
    path, which also produces its error messages."""
    shape = proto.tensor_shape
    dims = shape.dim
    if len(dims) != 1 or shape.unknown_rank:
        return None
    count = dims[0].size
    if count <= 0 or count > max_elements:
        return None
    dtype = proto.dtype
    if dtype == types_pb2.DT_STRING:
        values = proto.string_val
        if len(values) != count or proto.tensor_content:
            return None
        out = np.empty(count, dtype=object)
        out[:] = list(values)  # a list fills an object array twice as fast as the container
        return out
    if dtype == types_pb2.DT_FLOAT or dtype == types_pb2.DT_INT64 or dtype == types_pb2.DT_INT32:
        np_dtype, field_name = DTYPES[dtype]
        content = proto.tensor_content
        if content:
            if len(content) != count * np.dtype(np_dtype).itemsize:
                return None
            return np.frombuffer(content, dtype=np_dtype).copy()
        raw = getattr(proto, field_name)
        if len(raw) != count:
            return None
        return np.array(raw, dtype=np_dtype)
    return None


def _fill(values: np.ndarray, shape: tuple[int, ...], count: int, np_dtype: Any) -> np.ndarray:
    if values.size == count:
        return values.reshape(shape)
    if values.size > count:
        raise ValueError(f"{values.size} values for a tensor of {count} elements")
    if values.size == 0:
        if np_dtype is object:
            out = np.empty(count, dtype=object)
            out[:] = b""
            return out.reshape(shape)
        return np.zeros(shape, dtype=np_dtype)
    # Tensor::FromProto repeats the last value to fill the tensor.
    out = np.empty(count, dtype=values.dtype)
    out[: values.size] = values
    out[values.size:] = values[-1]
    return out.reshape(shape)


def proto_dtype(array: np.ndarray) -> int:
    if array.dtype == object or array.dtype.kind in ("S", "U"):
        return types_pb2.DT_STRING
    dtype = _DTYPE_BY_NUMPY.get(array.dtype)
    if dtype is None:
        raise ValueError(f"cannot encode numpy dtype {array.dtype}")
    return dtype


def to_tensor_proto(array: Any, out: Any | None = None) -> Any:
    """Encodes an output array into a TensorProto's value fields (AsProtoField)."""
    array = np.asarray(array)
    proto = out if out is not None else tensor_pb2.TensorProto()
    if array.dtype == _FLOAT32 and array.ndim == 1:  # a ranker's scores: the common case
        proto.dtype = types_pb2.DT_FLOAT
        proto.tensor_shape.dim.add().size = array.shape[0]
        proto.float_val.extend(array.tolist())
        return proto
    dtype = proto_dtype(array)
    proto.dtype = dtype
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add().size = int(size)
    flat = array.reshape(-1)
    if dtype == types_pb2.DT_STRING:
        proto.string_val.extend(
            v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat.tolist()
        )
    elif dtype == types_pb2.DT_HALF:
        proto.half_val.extend(flat.view(np.uint16).tolist())
    else:
        getattr(proto, DTYPES[dtype][1]).extend(flat.tolist())
    return proto


def make_shape(dims: list[int]) -> Any:
    shape = tensor_shape_pb2.TensorShapeProto()
    for d in dims:
        shape.dim.add().size = d
    return shape
