"""The curated TFDV schema the pipeline imports (never re-inferred from data)."""
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("schema.pbtxt")
