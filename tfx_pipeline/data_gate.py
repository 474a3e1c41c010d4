"""The data gate: a span reaches training only if its statistics fit the curated schema.

TFDV checks the span against the schema (types, presence, domains, ranges, example count)
and, when an earlier validated span exists, the drift comparators between the two. Every
problem is reported as (span, split, feature, anomaly) so the message says what to fix.
"""
from __future__ import annotations

import dataclasses

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

ENVIRONMENT = "TRAINING"


@dataclasses.dataclass(frozen=True)
class Problem:
    span: str
    split: str
    feature: str
    anomaly: str

    def __str__(self) -> str:
        return f"span {self.span}, split {self.split}, feature '{self.feature}': {self.anomaly}"


class DataRejected(RuntimeError):
    """Raised inside the pipeline so no training starts; the CLI maps it to exit code 3."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n  ".join(str(p) for p in problems)
        super().__init__(f"data rejected ({len(problems)} problem(s)):\n  {lines}")


def describe(anomalies: anomalies_pb2.Anomalies, span: str, split: str) -> list[Problem]:
    problems = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        reasons = "; ".join(r.description or r.short_description for r in info.reason) or info.description
        problems.append(Problem(span, split, feature, reasons))
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        reasons = "; ".join(r.description or r.short_description for r in info.reason) or info.description
        problems.append(Problem(span, split, "(dataset)", reasons))
    return problems


def check_split(
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    span: str,
    split: str,
    previous: statistics_pb2.DatasetFeatureStatisticsList | None,
) -> list[Problem]:
    if not statistics.datasets or statistics.datasets[0].num_examples == 0:
        # TFDV checks nothing on zero examples (not even min_examples_count): say it here.
        return [Problem(span, split, "(dataset)", "no examples: the span (or this split of it) is empty")]
    anomalies = tfdv.validate_statistics(
        statistics, schema, environment=ENVIRONMENT, previous_statistics=previous
    )
    return describe(anomalies, span, split)
