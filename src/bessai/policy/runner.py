"""Run an exported policy with onnxruntime alone: one observation in, one action out, timed."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bessai.errors import PolicyError
from bessai.policy.card import MODEL_FILE, PolicyCard, load_card
from bessai.policy.observation import ObsArray


class OnnxPolicy:
    """An exported policy directory (`policy.onnx` + `card.json`), checked and loaded once.
    `act` returns the action in [-1, 1] and how long the inference took."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.card: PolicyCard = load_card(directory)
        options = ort.SessionOptions()
        # One decision every few seconds: a single thread answers fastest and shares the cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(directory / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a corrupt graph
            raise PolicyError(
                f"{directory / MODEL_FILE}: onnxruntime cannot load it ({exc})"
            ) from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != self.card.input_name:
            raise PolicyError(
                f"{directory / MODEL_FILE}: expects input {self.card.input_name!r} as its card says"
            )
        shape = inputs[0].shape
        if len(shape) != 2 or shape[1] != self.card.n_obs:
            raise PolicyError(
                f"{directory / MODEL_FILE}: input shape {shape}, the card's layout has "
                f"{self.card.n_obs} values"
            )
        # The first run allocates and plans the graph: do it now, not in the first cycle.
        self._session.run(None, {self.card.input_name: np.zeros((1, self.card.n_obs), np.float32)})

    def act(self, obs: ObsArray) -> tuple[float, float]:
        """(action in [-1, 1], inference time in ms). A non-finite or missing answer raises
        `PolicyError`: the caller falls back."""
        batch = np.asarray(obs, dtype=np.float32).reshape(1, self.card.n_obs)
        t0 = time.perf_counter()
        out = self._session.run([self.card.output_name], {self.card.input_name: batch})
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        values = np.asarray(out[0], dtype=np.float64).ravel()
        if values.size != 1:
            raise PolicyError(f"the policy returned {values.size} values, not one action")
        action = float(values[0])
        if not math.isfinite(action):
            raise PolicyError(f"the policy returned {action} (not a number)")
        return max(-1.0, min(1.0, action)), elapsed_ms
