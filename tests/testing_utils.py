"""Shared helpers for the tests: tiny configs, weight randomisation and free ports."""

import socket

import torch


TINY_UNET_CONFIG = dict(block_out_channels=(8, 16), layers_per_block=1, attention_depths=(1,), norm_num_groups=4)


def randomise_weights(model, seed=0, std=0.1):
    """Presets start with near-zero output layers; give every parameter a visible value so outputs carry information."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return model


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no one listens on now (for a launcher's rendezvous or a test server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
