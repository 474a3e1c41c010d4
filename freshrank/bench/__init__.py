"""`freshrank bench`: does incremental updating pay? One drifting stream, six update strategies.

Modules, one job each: `stream` (market spans as ExampleGen-shaped TFRecords), `metrics`
(AUC and NDCG@10 with the pipeline's definitions), `scoring` (an export's scores on a split),
`strategies` (what each strategy trains on and from), `runner` (the replay), `report`
(bench.json, bench.md, bench.png).
"""
