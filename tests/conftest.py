"""Shared test helpers. The backend is chosen by KERAS_BACKEND before keras is imported."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import keras

BACKEND = keras.backend.backend()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("GRUKIT_DATA_DIR", os.path.join(REPO, "..", "shared", "data"))


def to_np(x):
    """Backend tensor -> float64 NumPy array (works for torch tensors that require grad)."""
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(1234)
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)
