"""Custom TFX components of freshrank."""
