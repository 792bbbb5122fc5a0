"""The load: the open-loop send schedule, the generator processes, the record header, synthetic transactions."""
