"""`bench drain`: the scoring service alone, emptying a pre-loaded topic, exactly once."""
