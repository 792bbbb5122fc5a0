"""`bench model`: train the fraud model reproducibly, check the committed one, compile it."""
