"""Prometheus metrics with TF Serving's names, served at the monitoring config's path.

TF Serving exports its monitoring metrics with '/' replaced by ':' — `/tensorflow/serving/
request_count` becomes `:tensorflow:serving:request_count`. Dashboards built against the real
server therefore work against this one. Latencies are in microseconds with TF Serving's buckets
(10 * 1.8^i, 33 buckets). Labels: request_count has TF Serving's model_name and status plus API;
request_latency has model_name, API and entrypoint (GRPC or REST), and only counts successful
requests, as in TF Serving.
"""
from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable

LATENCY_BUCKETS_US = tuple(10.0 * 1.8**i for i in range(33))
BATCH_SIZE_BUCKETS = tuple(float(2**i) for i in range(15))

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
LOAD_COUNT = ":tensorflow:serving:model_load_count"
BATCH_SIZE = ":tensorflow:serving:batching_session:processed_batch_size"


class _Histogram:
    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Iterable[str], values: Iterable[str]) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))


class Metrics:
    """Thread-safe counters and histograms, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._request_count: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str, str], _Histogram] = {}
        self._loads: dict[tuple[str, str], int] = defaultdict(int)
        self._batch_sizes = _Histogram(BATCH_SIZE_BUCKETS)

    def record_request(self, model_name: str, api: str, entrypoint: str, status: str,
                       latency_us: float) -> None:
        with self._lock:
            self._request_count[(model_name, api, status)] += 1
            if status == "OK":
                key = (model_name, api, entrypoint)
                histogram = self._latency.get(key)
                if histogram is None:
                    histogram = self._latency[key] = _Histogram(LATENCY_BUCKETS_US)
                histogram.observe(latency_us)

    def record_load(self, model_name: str, status: str) -> None:
        with self._lock:
            self._loads[(model_name, status)] += 1

    def record_batch(self, rows: int, padded_rows: int) -> None:
        with self._lock:
            self._batch_sizes.observe(float(padded_rows))

    def request_count(self, model_name: str, api: str, status: str = "OK") -> int:
        with self._lock:
            return self._request_count.get((model_name, api, status), 0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            lines.append(f"# HELP {REQUEST_COUNT} The total number of requests.")
            lines.append(f"# TYPE {REQUEST_COUNT} counter")
            for (model, api, status), value in sorted(self._request_count.items()):
                labels = _labels(("model_name", "API", "status"), (model, api, status))
                lines.append(f"{REQUEST_COUNT}{{{labels}}} {value}")
            lines.append(f"# HELP {REQUEST_LATENCY} Distribution of wall time (in microseconds)"
                         " for Tensorflow Serving request.")
            lines.append(f"# TYPE {REQUEST_LATENCY} histogram")
            for key, histogram in sorted(self._latency.items()):
                base = _labels(("model_name", "API", "entrypoint"), key)
                lines.extend(_histogram_lines(REQUEST_LATENCY, base, histogram))
            lines.append(f"# HELP {LOAD_COUNT} Model version loads by final status.")
            lines.append(f"# TYPE {LOAD_COUNT} counter")
            for (model, status), value in sorted(self._loads.items()):
                labels = _labels(("model_name", "status"), (model, status))
                lines.append(f"{LOAD_COUNT}{{{labels}}} {value}")
            lines.append(f"# HELP {BATCH_SIZE} Rows per processed batch, padding included.")
            lines.append(f"# TYPE {BATCH_SIZE} histogram")
            if self._batch_sizes.count:
                lines.extend(_histogram_lines(BATCH_SIZE, "", self._batch_sizes))
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, base_labels: str, histogram: _Histogram) -> list[str]:
    prefix = f"{base_labels}," if base_labels else ""
    lines = []
    cumulative = 0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
        cumulative += count
        lines.append(f'{name}_bucket{{{prefix}le="{bound!r}"}} {cumulative}')
    cumulative += histogram.counts[-1]
    lines.append(f'{name}_bucket{{{prefix}le="+Inf"}} {cumulative}')
    suffix = f"{{{base_labels}}}" if base_labels else ""
    lines.append(f"{name}_sum{suffix} {histogram.total!r}")
    lines.append(f"{name}_count{suffix} {histogram.count}")
    return lines
