"""The BERT cross-encoder ranker that the TFX Trainer fits, warm-starts and exports."""
