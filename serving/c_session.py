"""A SavedModel loaded and run through TensorFlow's C API, so that loading never holds the GIL.

Why: a Python model server that loads a new version with `tf.compat.v1.saved_model.loader.load`
imports the graph through `TF_GraphImportGraphDefWithResults` while holding Python's interpreter
lock, 110-230 ms at a time for the trainer's export (`benchmarks/load_gil_probe.py`); every
request thread waits meanwhile, which is what put p99 during version swaps at 2-5x steady p99.
TensorFlow's own model server loads in C++ (`LoadSavedModel`) on a thread of its own. The same
loader is exported from the pip wheel's `libtensorflow_cc` as `TF_LoadSessionFromSavedModel`;
called through `ctypes.CDLL`, which releases the lock for the duration of a foreign call, the
whole load (graph import, variable restore, init ops, assets) runs while requests keep being
answered. Requests then run through `TF_SessionRun`, also without the lock.

Only that long call and the session run release the lock: the small calls (allocating a tensor,
reading its data pointer) go through `ctypes.PyDLL`, which keeps it, so a request does not queue
for the lock again after each of them.

Strings are fed as TensorFlow `tstring` views of the request's own bytes (the layout of
`tsl/platform/ctstring_internal.h`, stable since TensorFlow 2.4): no per-string copy; the bytes
are kept alive until the run has returned and its input tensors are deleted.
"""
from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2

_VOID_P = ctypes.c_void_p
_STRING = 7  # TF_STRING, the same number as types_pb2.DT_STRING
_TSTRING_BYTES = 24
_VIEW = 3  # TF_TSTR_VIEW: size << 2 | 3, then a pointer that the tensor does not own
_SMALL, _LARGE, _OFFSET = 0, 1, 2
_VIEW_RECORD = struct.Struct("<QQQ")
_U2, _U3 = np.uint64(2), np.uint64(3)
_INVALID_ARGUMENT, _UNIMPLEMENTED = 3, 12  # TF_Code, the gRPC numbering
_NUMPY_BY_TF: dict[int, np.dtype] = {}
_TF_BY_NUMPY: dict[np.dtype, int] = {}


class CApiError(Exception):
    """A TF_Status that was not OK: TensorFlow's error code (the gRPC numbering) and message."""

    def __init__(self, error_code: int, message: str):
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class _TFOutput(ctypes.Structure):
    _fields_ = [("oper", _VOID_P), ("index", ctypes.c_int)]


class _TFBuffer(ctypes.Structure):
    _fields_ = [("data", _VOID_P), ("length", ctypes.c_size_t), ("dealloc", _VOID_P)]


class _Library:
    """The C API functions used here, bound once per process."""

    def __init__(self, path: str):
        free = ctypes.CDLL(path)  # releases the GIL during each call
        held = ctypes.PyDLL(path)  # keeps it: for calls of a microsecond

        def bind(lib, name, restype, *argtypes):
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = list(argtypes)
            return function

        v, i, size, char_p = _VOID_P, ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p
        self.new_status = bind(held, "TF_NewStatus", v)
        self.delete_status = bind(held, "TF_DeleteStatus", None, v)
        self.get_code = bind(held, "TF_GetCode", i, v)
        self.message = bind(held, "TF_Message", char_p, v)
        self.new_session_options = bind(held, "TF_NewSessionOptions", v)
        self.set_config = bind(held, "TF_SetConfig", None, v, char_p, size, v)
        self.delete_session_options = bind(held, "TF_DeleteSessionOptions", None, v)
        self.new_graph = bind(held, "TF_NewGraph", v)
        self.delete_graph = bind(free, "TF_DeleteGraph", None, v)
        self.new_buffer = bind(held, "TF_NewBuffer", ctypes.POINTER(_TFBuffer))
        self.new_buffer_from_string = bind(held, "TF_NewBufferFromString", ctypes.POINTER(_TFBuffer),
                                           char_p, size)
        self.new_session = bind(held, "TF_NewSession", v, v, v, v)
        self.delete_buffer = bind(held, "TF_DeleteBuffer", None, ctypes.POINTER(_TFBuffer))
        self.load_session = bind(free, "TF_LoadSessionFromSavedModel", v, v, v, char_p,
                                 ctypes.POINTER(char_p), i, v, ctypes.POINTER(_TFBuffer), v)
        self.close_session = bind(free, "TF_CloseSession", None, v, v)
        self.delete_session = bind(free, "TF_DeleteSession", None, v, v)
        self.operation_by_name = bind(held, "TF_GraphOperationByName", v, v, char_p)
        self.operation_num_outputs = bind(held, "TF_OperationNumOutputs", i, v)
        self.session_run = bind(free, "TF_SessionRun", None, v, v, v, v, i, v, v, i, v, i, v, v)
        self.allocate_tensor = bind(held, "TF_AllocateTensor", v, i, char_p, i, size)
        self.tensor_data = bind(held, "TF_TensorData", v, v)
        self.tensor_byte_size = bind(held, "TF_TensorByteSize", size, v)
        self.num_dims = bind(held, "TF_NumDims", i, v)
        self.dim = bind(held, "TF_Dim", ctypes.c_int64, v, i)
        self.tensor_type = bind(held, "TF_TensorType", i, v)
        self.delete_tensor = bind(held, "TF_DeleteTensor", None, v)
        # ctypes.memmove releases the GIL for a copy of a few hundred bytes; this one keeps it.
        self.memmove = bind(ctypes.PyDLL(None), "memmove", v, v, v, size)


_library: _Library | None = None
_library_lock = threading.Lock()
_BYTES_DATA_OFFSET = 0  # where a bytes object's data starts, from its id() (CPython)


def library_path() -> str:
    """The shared library of the installed TensorFlow that exports the C API."""
    import tensorflow as tf

    directory = os.path.dirname(tf.__file__)
    for name in ("libtensorflow_cc.so.2", "libtensorflow_cc.2.dylib", "libtensorflow_cc.so"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise OSError(f"no libtensorflow_cc shared library in {directory}; load with "
                  "--load_with_c_api=false to use TensorFlow's Python loader")


def _lib() -> _Library:
    global _library, _BYTES_DATA_OFFSET
    if _library is None:
        with _library_lock:
            if _library is None:
                from tensorflow.python.framework import dtypes

                from serving import tensors

                for dtype in tensors.DTYPES:
                    if dtype != _STRING:
                        numpy_dtype = np.dtype(dtypes.as_dtype(dtype).as_numpy_dtype)
                        _NUMPY_BY_TF[dtype] = numpy_dtype
                        _TF_BY_NUMPY[numpy_dtype] = dtype
                probe = b"offset probe"
                _BYTES_DATA_OFFSET = ctypes.cast(probe, _VOID_P).value - id(probe)
                _library = _Library(library_path())
    return _library


def available() -> bool:
    """Whether this TensorFlow exports the C API loader (checked once)."""
    try:
        _lib()
    except (OSError, AttributeError):
        return False
    return True


def _raise_for(lib: _Library, status: int) -> None:
    code = lib.get_code(status)
    if code:
        raise CApiError(code, lib.message(status).decode("utf-8", "replace"))


class CSession:
    """A SavedModel's session and graph, owned by TensorFlow's C API.

    Requests run on the inter-op thread pool REQUEST_POOL; the load's own runs (restoring
    variables, init ops) and warmup requests run on BACKGROUND_POOL, whose one thread is
    `background_nice` nicer, so that a version swapping in does not queue its work in front of
    the serving version's requests (both pools are process-wide, shared by every version).
    """

    def __init__(self, path: str, tags: Sequence[str], config: config_pb2.ConfigProto,
                 background_nice: int = 10):
        lib = _lib()
        self._lib = lib
        self._closed = False
        config = _with_pools(config)
        _create_pools(lib, config, background_nice)
        self._background_options = _background_run_options(lib)
        status = lib.new_status()
        options = _session_options(lib, config, status)
        meta_graph = lib.new_buffer()
        graph = lib.new_graph()
        try:
            c_tags = (ctypes.c_char_p * len(tags))(*[t.encode() for t in tags])
            session = lib.load_session(options, self._background_options, path.encode(), c_tags,
                                       len(tags), graph, meta_graph, status)
            try:
                _raise_for(lib, status)
            except CApiError:
                lib.delete_graph(graph)
                raise
            blob = ctypes.string_at(meta_graph.contents.data, meta_graph.contents.length)
        finally:
            lib.delete_buffer(meta_graph)
            lib.delete_session_options(options)
            lib.delete_status(status)
        self._session = session
        self._graph = graph
        self.meta_graph = signatures_only(blob)

    def make_callable(self, feeds: Sequence[str], fetches: Sequence[str],
                      background: bool = False) -> _Callable:
        """A function of the feeds' arrays returning the fetches' arrays (on the background pool
        when `background`); raises CApiError, as TensorFlow's session does, for a tensor name
        the graph lacks."""
        return _Callable(self._lib, self._session, self, tuple(self._output(name) for name in feeds),
                         tuple(self._output(name) for name in fetches),
                         self._background_options if background else None)

    def _output(self, name: str) -> _TFOutput:
        op_name, _, index = name.partition(":")
        operation = self._lib.operation_by_name(self._graph, op_name.encode())
        position = int(index) if index.isdigit() else 0 if not index else -1
        if not operation or not 0 <= position < self._lib.operation_num_outputs(operation):
            raise CApiError(_INVALID_ARGUMENT, f"Tensor {name}, specified in either feed_devices or "
                                               "fetch_devices was not in the Graph")
        return _TFOutput(operation, position)

    def close(self) -> None:
        """Frees the session and graph (without the GIL: freeing a large graph takes time)."""
        if self._closed:
            return
        self._closed = True
        lib = self._lib
        status = lib.new_status()
        try:
            lib.close_session(self._session, status)
            lib.delete_session(self._session, status)
        finally:
            lib.delete_status(status)
            lib.delete_graph(self._graph)


REQUEST_POOL = "freshrank_requests"
BACKGROUND_POOL = "freshrank_background"
_pools_created: set[str] = set()
_background_buffer: Any = None


def _with_pools(config: config_pb2.ConfigProto) -> config_pb2.ConfigProto:
    """The session config with two named inter-op pools: requests (index 0, the default for
    every run) and background (index 1, for runs given the background RunOptions)."""
    config = config_pb2.ConfigProto.FromString(config.SerializeToString())
    threads = config.inter_op_parallelism_threads
    del config.session_inter_op_thread_pool[:]
    # TensorFlow's size for 0 is the number of cores; a named pool must be asked for with the
    # same size every time, so the size goes into its name.
    config.session_inter_op_thread_pool.add(num_threads=threads, global_name=f"{REQUEST_POOL}_{threads}")
    config.session_inter_op_thread_pool.add(num_threads=1, global_name=BACKGROUND_POOL)
    return config


def _create_pools(lib: _Library, config: config_pb2.ConfigProto, background_nice: int) -> None:
    """Creates the process-wide pools once, each from a thread of the right priority.

    TensorFlow starts a pool's threads when the first session naming it is made, and Linux
    threads inherit the nice value of the thread that starts them: the request pool is made
    from this thread (never niced: a model's first load is not a swap), the background pool
    from a short-lived thread that first makes itself `background_nice` nicer."""
    requests, background = (pool.global_name for pool in config.session_inter_op_thread_pool)
    with _library_lock:
        if requests not in _pools_created:
            _make_session(lib, _only_pool(config, 0))
            _pools_created.add(requests)
        if background not in _pools_created:
            failure: list[BaseException] = []

            def make() -> None:
                try:
                    if background_nice > 0 and hasattr(os, "setpriority"):
                        tid = threading.get_native_id()
                        now = os.getpriority(os.PRIO_PROCESS, tid)
                        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + background_nice))
                    _make_session(lib, _only_pool(config, 1))
                except BaseException as exc:  # noqa: BLE001 - raised again below
                    failure.append(exc)

            thread = threading.Thread(target=make, name="background-pool")
            thread.start()
            thread.join()
            if failure:
                raise failure[0]
            _pools_created.add(background)


def _only_pool(config: config_pb2.ConfigProto, index: int) -> config_pb2.ConfigProto:
    one = config_pb2.ConfigProto.FromString(config.SerializeToString())
    keep = one.session_inter_op_thread_pool[index]
    del one.session_inter_op_thread_pool[:]
    one.session_inter_op_thread_pool.add().CopyFrom(keep)
    return one


def _make_session(lib: _Library, config: config_pb2.ConfigProto) -> None:
    """An empty session with `config`: makes its named pools, which outlive it."""
    status = lib.new_status()
    try:
        options = _session_options(lib, config, status)
        graph = lib.new_graph()
        try:
            session = lib.new_session(graph, options, status)
            _raise_for(lib, status)
            lib.close_session(session, status)
            lib.delete_session(session, status)
        finally:
            lib.delete_graph(graph)
            lib.delete_session_options(options)
    finally:
        lib.delete_status(status)


def _session_options(lib: _Library, config: config_pb2.ConfigProto, status: int) -> int:
    """TF_SessionOptions holding `config` (the caller deletes them)."""
    options = lib.new_session_options()
    serialized = config.SerializeToString()
    lib.set_config(options, serialized, len(serialized), status)
    try:
        _raise_for(lib, status)
    except CApiError:
        lib.delete_session_options(options)
        raise
    return options


def _background_run_options(lib: _Library) -> Any:
    """RunOptions that put a run on the background pool (index 1), one buffer per process."""
    global _background_buffer
    if _background_buffer is None:
        serialized = config_pb2.RunOptions(inter_op_thread_pool=1).SerializeToString()
        _background_buffer = lib.new_buffer_from_string(serialized, len(serialized))
    return _background_buffer


def signatures_only(serialized_meta_graph: bytes) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef's meta_info_def and signature_def, skipping its graph.

    Parsing the graph (megabytes for a BERT ranker's function library) would hold the GIL for
    milliseconds, and the server needs only the signatures; the top-level fields are walked on
    the wire format and the others parsed."""
    keep = (1, 5)  # meta_info_def, signature_def
    view = memoryview(serialized_meta_graph)
    parts: list[bytes] = []
    position = 0
    end = len(view)
    while position < end:
        start = position
        key, position = _varint(view, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == 2:
            length, position = _varint(view, position)
            position += length
        elif wire_type == 0:
            _, position = _varint(view, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        else:
            raise ValueError(f"unexpected wire type {wire_type} in a MetaGraphDef")
        if field in keep:
            parts.append(bytes(view[start:position]))
    return meta_graph_pb2.MetaGraphDef.FromString(b"".join(parts))


def _varint(view: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = view[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


class _Callable:
    """One (feeds, fetches) combination of a CSession, run with fresh input tensors each call."""

    def __init__(self, lib: _Library, session: int, owner: CSession, feeds: tuple[_TFOutput, ...],
                 fetches: tuple[_TFOutput, ...], run_options: Any = None):
        self._lib = lib
        self._session = session
        self._run_options = run_options
        self._owner = owner  # the session must outlive its callables
        self._inputs = (_TFOutput * len(feeds))(*feeds)
        self._outputs = (_TFOutput * len(fetches))(*fetches)
        self._input_count = len(feeds)
        self._output_count = len(fetches)
        self._input_array = _VOID_P * len(feeds)
        self._output_array = _VOID_P * len(fetches)

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        if len(arrays) != self._input_count:
            raise ValueError(f"expected {self._input_count} arrays, got {len(arrays)}")
        lib = self._lib
        tensors = self._input_array()
        outputs = self._output_array()
        keep: list[Any] = []  # the bytes that string views point into, alive until the run ends
        status = lib.new_status()
        try:
            strings = [array for array in arrays if array.dtype == object]
            records = _string_records(strings, keep) if strings else b""
            first = 0
            for index, array in enumerate(arrays):
                dims = struct.pack(f"<{array.ndim}q", *array.shape)
                if array.dtype == object:
                    length = array.size * _TSTRING_BYTES
                    data = records[first:first + length]
                    first += length
                    dtype = _STRING
                else:
                    dtype = _TF_BY_NUMPY.get(array.dtype)
                    if dtype is None:
                        raise CApiError(_INVALID_ARGUMENT, f"cannot feed an array of numpy dtype {array.dtype}")
                    data = array.tobytes()
                tensor = lib.allocate_tensor(dtype, dims, array.ndim, len(data))
                if data:
                    lib.memmove(lib.tensor_data(tensor), data, len(data))
                tensors[index] = tensor
            lib.session_run(self._session, self._run_options, self._inputs, tensors, self._input_count,
                            self._outputs, outputs, self._output_count, None, 0, None, status)
            _raise_for(lib, status)
            return [_to_array(lib, tensor) for tensor in outputs]
        finally:
            for tensor in tensors:
                if tensor:
                    lib.delete_tensor(tensor)
            for tensor in outputs:
                if tensor:
                    lib.delete_tensor(tensor)
            lib.delete_status(status)


def _string_records(arrays: list[np.ndarray], keep: list[Any]) -> bytes:
    """Every string element of `arrays`, in order, as 24-byte tstring views."""
    values = [value if isinstance(value, bytes) else _as_bytes(value)
              for array in arrays for value in array.ravel().tolist()]
    keep.append(values)
    count = len(values)
    if count <= 4:  # a pair: four struct.packs beat numpy's fixed cost
        pack = _VIEW_RECORD.pack
        return b"".join([pack(len(v) << 2 | _VIEW, id(v) + _BYTES_DATA_OFFSET, 0) for v in values])
    blob = b"".join(values)
    keep.append(blob)
    sizes = np.fromiter(map(len, values), dtype=np.uint64, count=count)
    records = np.zeros((count, 3), dtype=np.uint64)
    records[:, 0] = (sizes << _U2) | _U3
    np.cumsum(sizes[:-1], out=records[1:, 1])
    records[:, 1] += np.uint64(id(blob) + _BYTES_DATA_OFFSET)
    return records.tobytes()


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview, np.bytes_)):
        return bytes(value)
    raise CApiError(_INVALID_ARGUMENT, f"cannot feed {type(value).__name__} as a string")


def _to_array(lib: _Library, tensor: int) -> np.ndarray:
    shape = tuple([lib.dim(tensor, d) for d in range(lib.num_dims(tensor))])
    dtype = lib.tensor_type(tensor)
    data = lib.tensor_data(tensor)
    size = lib.tensor_byte_size(tensor)
    if dtype == _STRING:
        return _strings(data, int(np.prod(shape, dtype=np.int64)), shape)
    numpy_dtype = _NUMPY_BY_TF.get(dtype)
    if numpy_dtype is None:
        raise CApiError(_UNIMPLEMENTED, f"cannot fetch a tensor of TensorFlow dtype {dtype}")
    return np.frombuffer(ctypes.string_at(data, size) if size else b"", dtype=numpy_dtype).reshape(shape)


def _strings(data: int, count: int, shape: tuple[int, ...]) -> np.ndarray:
    """Reads `count` tstrings at `data` (any of the four layouts) into an object array of bytes."""
    out = np.empty(count, dtype=object)
    raw = ctypes.string_at(data, count * _TSTRING_BYTES) if count else b""
    for i in range(count):
        record = raw[i * _TSTRING_BYTES:(i + 1) * _TSTRING_BYTES]
        kind = record[0] & 3
        if kind == _SMALL:
            out[i] = record[1:1 + (record[0] >> 2)]
        elif kind == _OFFSET:
            size, offset = struct.unpack_from("<II", record)
            out[i] = ctypes.string_at(data + i * _TSTRING_BYTES + offset, size >> 2)
        else:  # LARGE: size, capacity, pointer; VIEW: size, pointer
            size, first, second = _VIEW_RECORD.unpack(record)
            out[i] = ctypes.string_at(second if kind == _LARGE else first, size >> 2)
    return out.reshape(shape)
