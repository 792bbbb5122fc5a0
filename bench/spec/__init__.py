"""What a benchmark run is told: scenario files (what load) and target files (which cluster, tuned how)."""
