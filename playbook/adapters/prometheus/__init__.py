"""Prometheus (and Thanos, Mimir, VictoriaMetrics: anything serving its HTTP API)."""
