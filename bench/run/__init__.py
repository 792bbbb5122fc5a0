"""`bench run`: orchestration of a scenario, its phases, the child processes, the pipeline under test, the broker's warm-up."""
