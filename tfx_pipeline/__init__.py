"""The continuous-training TFX pipeline: ingest a span, gate it, train on a window, bless, push."""
