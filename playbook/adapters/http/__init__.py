"""HTTP: diagnostics that read a JSON endpoint (no writer: HTTP targets are read only)."""
