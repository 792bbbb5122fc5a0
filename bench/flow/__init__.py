"""The seed's three-terminal flow: `bench score`, `bench produce`, `bench alerts`."""
