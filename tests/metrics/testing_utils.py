"""Test images and a hand-written BT.601 luma shared by the metric tests."""

import numpy as np
from skimage import data


def noisy_pairs(seed=0):
    """Real photo crops (scikit-image's astronaut and coffee) and random images, each with a noisy copy."""
    rng = np.random.default_rng(seed)
    references = [
        data.astronaut()[100:164, 150:230],
        data.coffee()[200:248, 300:360],
        rng.integers(0, 256, size=(40, 36, 3), dtype=np.uint8),
    ]
    predictions = [
        np.clip(image.astype(np.int64) + rng.integers(-25, 26, size=image.shape), 0, 255).astype(np.uint8)
        for image in references
    ]
    return predictions, references


def luma(image):
    """BT.601 Y on [0, 255], computed from R, G, B in [0, 1] as SPEC section 4 writes it."""
    rgb = image.astype(np.float64) / 255.0
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]
