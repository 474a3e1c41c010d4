"""One error type carrying a gRPC status code, as TF Serving's `tensorflow::Status` does.

Every layer raises `ServingError`; the gRPC layer turns it into a status, the REST layer into an
HTTP code and an `{"error": ...}` body. Keeping one type means a request can fail anywhere and
still get the code TF Serving would have returned.
"""
from __future__ import annotations

from http import HTTPStatus

import grpc

# TF Serving cuts error messages sent over gRPC (grpc_status_util.cc).
MAX_MESSAGE_CHARS = 1024

_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# http_server.cc ToHTTPStatusCode().
_HTTP_BY_CODE = {
    grpc.StatusCode.OK: HTTPStatus.OK,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.ABORTED: HTTPStatus.CONFLICT,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
}


class ServingError(Exception):
    """A failed request or load, with the gRPC code TF Serving uses for it."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @property
    def code_number(self) -> int:
        return int(self.code.value[0])

    @property
    def http_status(self) -> int:
        return int(_HTTP_BY_CODE.get(self.code, HTTPStatus.INTERNAL_SERVER_ERROR))

    def grpc_details(self) -> str:
        """The message as TF Serving sends it over gRPC: at most 1024 characters."""
        if len(self.message) > MAX_MESSAGE_CHARS:
            return self.message[:MAX_MESSAGE_CHARS] + "...TRUNCATED"
        return self.message


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unavailable(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)


def internal(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INTERNAL, message)


def unimplemented(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNIMPLEMENTED, message)


def unknown(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNKNOWN, message)


def code_from_number(number: int) -> grpc.StatusCode:
    """tensorflow::error::Code and gRPC share their numbering."""
    return _CODE_BY_NUMBER.get(int(number), grpc.StatusCode.UNKNOWN)


def from_exception(exc: BaseException) -> ServingError:
    """Maps anything raised while serving to a ServingError; TF op errors keep their code."""
    if isinstance(exc, ServingError):
        return exc
    error_code = getattr(exc, "error_code", None)  # tf.errors.OpError
    message = getattr(exc, "message", None)
    if isinstance(error_code, int) and isinstance(message, str):
        return ServingError(code_from_number(error_code), message)
    if isinstance(exc, MemoryError):
        return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, "Out of memory while serving")
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
