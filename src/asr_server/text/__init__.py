"""Text: output formats and Chinese script conversion."""
