"""The transport floor for serving_bench.py: a Python gRPC server that does no work.

It answers PredictionService/Predict with fixed bytes after holding each call for --hold-ms
(sleeping, as a server waits on TensorFlow), on the same grpcio and the same thread-pool server
as freshrank-model-server. What a client measures around it, minus the hold, is what any Python
gRPC server costs here before doing anything: the part of the "gRPC overhead" no server code can
remove. The hold matters: on virtual machines an idle CPU wakes slowly, so a round trip around a
10 ms call costs more than one around an instant call (0.9 against 0.5 ms on the project's
2-core machines).

The response's bytes are the handler's own duration in seconds (ASCII), so the client subtracts
the hold actually slept, not the one asked for.

Usage (serving_bench.py starts it): python benchmarks/grpc_floor.py --hold-ms 1.7
prints "PORT <n>" once listening, serves until killed.
"""
from __future__ import annotations

import argparse
import time
from concurrent import futures

import grpc

SERVICE = "tensorflow.serving.PredictionService"


def serve(hold_seconds: float, max_workers: int) -> None:
    def predict(_request: bytes, _context: grpc.ServicerContext) -> bytes:
        start = time.perf_counter()
        if hold_seconds > 0:
            time.sleep(hold_seconds)
        return repr(time.perf_counter() - start).encode()

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Predict": grpc.unary_unary_rpc_method_handler(predict)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold-ms", type=float, default=0.0,
                        help="how long each call is held before the answer")
    parser.add_argument("--max-workers", type=int, default=64,
                        help="thread pool size (freshrank-model-server's --grpc_max_threads)")
    args = parser.parse_args()
    serve(args.hold_ms / 1000.0, args.max_workers)


if __name__ == "__main__":
    main()
