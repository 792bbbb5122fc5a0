"""fraudstream's benchmark harness: broker, topics, load, latency sink, reports."""
