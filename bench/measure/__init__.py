"""What a run measures: the latency sink, histograms, the per-second timeline, the exactly-once verdict, host facts."""
