"""Learned dispatch: a PPO policy trained on `bessai/BESS-v0` (optional extra `[rl]`), exported
to ONNX with a model card, and run on the edge with onnxruntime alone."""
