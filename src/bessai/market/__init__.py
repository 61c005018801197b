"""Market data: price loaders, the CEN fetcher and the CMg forecaster (features, training,
ONNX export, the gateway predictor, evaluation)."""
