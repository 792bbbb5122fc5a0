"""Helpers shared by the benchmark files (not in conftest: test modules import these)."""

__all__ = ["SEED", "EVENTS", "BATCH_SIZES", "rows", "chunks", "per_event"]

SEED = 1729
EVENTS = 8192
BATCH_SIZES = (1, 64, 1024, 8192)

# (benchmark name, min µs/event, median µs/event), printed by conftest at the end of the run
rows: list[tuple[str, float, float]] = []


def chunks(values: list, size: int, events: int) -> list[list]:
    """events values (cycling through `values`) cut into batches of `size`."""
    picked = [values[i % len(values)] for i in range(events)]
    return [picked[i:i + size] for i in range(0, events, size)]


def per_event(benchmark, events: int) -> tuple[float, float]:
    """(min, median) µs per event of the benchmark that just ran, also put in extra_info."""
    stats = benchmark.stats.stats
    best, median = stats.min / events * 1e6, stats.median / events * 1e6
    benchmark.extra_info.update(events_per_round=events, us_per_event_min=round(best, 4),
                                us_per_event_median=round(median, 4))
    rows.append((benchmark.name, best, median))
    return best, median
