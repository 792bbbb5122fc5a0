"""The pipeline's topics (`bench topics`) and the broker's raw ceiling (`bench passthrough`)."""
