"""Tests for sr3_diffusers/data.py: degradation, aligned crops, augmentation, and the `datasets` plumbing.

The image folders are built from scikit-image's bundled photos (`skimage.data`), never from downloaded data.
"""

import hashlib

import numpy as np
import PIL.Image
import pytest
import torch

from sr3_diffusers.data import (
    PROBLEM_TOO_SMALL,
    PROBLEM_UNREADABLE,
    PairedRandomCrop,
    aligned_crop_pair,
    center_crop_offsets,
    center_crop_pair,
    degrade,
    inspect_dataset,
    load_image_dataset,
    load_validation_pairs,
    modcrop,
    prepare_train_dataset,
    random_dihedral,
    sample_seed,
)
from sr3_diffusers.image_processing import imresize


skimage_data = pytest.importorskip("skimage.data")

SCALE = 4


def make_photo_folder(folder, with_bad_files=True):
    """An image folder of real photos in several modes, plus (optionally) one truncated, one non-image and one tiny
    file. Usable at HR crops up to 296 pixels: 7 photos; the tiny one is 40x40."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir(exist_ok=True)
    PIL.Image.fromarray(skimage_data.astronaut()).save(folder / "astronaut.png")  # RGB 512x512
    PIL.Image.fromarray(skimage_data.camera()).save(folder / "camera.png")  # L 512x512
    PIL.Image.fromarray(skimage_data.coffee()).convert("RGBA").save(folder / "coffee_rgba.png")  # RGBA 600x400
    PIL.Image.fromarray(skimage_data.chelsea()).save(folder / "sub" / "chelsea.jpg", quality=95)  # RGB 451x300
    PIL.Image.fromarray(skimage_data.rocket()).convert("P").save(folder / "rocket_palette.png")  # P 640x427
    camera_16 = skimage_data.camera().astype(np.uint16) * 257
    PIL.Image.fromarray(camera_16).save(folder / "camera_16bit.png")  # 16-bit grey
    PIL.Image.fromarray(skimage_data.coins()).save(folder / "coins.png")  # L 384x303
    if with_bad_files:
        (folder / "truncated.png").write_bytes((folder / "astronaut.png").read_bytes()[:3000])
        (folder / "not_an_image.jpg").write_bytes(b"this is not a JPEG file")
        PIL.Image.fromarray(skimage_data.astronaut()[:40, :40]).save(folder / "tiny.png")
    return folder


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("datasets_cache"))


@pytest.fixture(scope="module")
def astronaut():
    return torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1).float() / 255.0


# ----------------------------------------------------------------------------------------------------------------------
# Degradation and crops
# ----------------------------------------------------------------------------------------------------------------------


def test_degrade_is_matlab_bicubic_quantised_to_uint8_levels(astronaut):
    low_res = degrade(astronaut, SCALE)
    assert low_res.shape == (3, 128, 128)
    levels = low_res * 255.0
    assert torch.equal(levels, levels.round()), "LR values must be uint8 levels, as in a stored PNG"
    assert low_res.min() >= 0 and low_res.max() <= 1
    unquantised = imresize(astronaut, 1 / SCALE).clamp(0, 1)  # bicubic overshoots; a uint8 file clips
    assert (low_res - unquantised).abs().max() <= 0.5 / 255 + 1e-6
    # Constant images stay constant (weights sum to one, symmetric padding at the borders).
    assert torch.equal(degrade(torch.full((3, 16, 12), 100 / 255), SCALE), torch.full((3, 4, 3), 100 / 255))


def test_degrade_needs_sides_that_are_multiples_of_scale(astronaut):
    with pytest.raises(ValueError, match="modcrop"):
        degrade(astronaut[:, :510, :], SCALE)
    assert modcrop(astronaut[:, :510, :509], SCALE).shape == (3, 508, 508)


@pytest.mark.parametrize("top, left", [(0, 0), (0, 97), (57, 3), (97, 97), (40, 61)])
def test_aligned_crop_pair_equals_degrading_the_whole_image_then_cropping(astronaut, top, left):
    lr_size = 31
    full_low_res = degrade(astronaut, SCALE)
    low_res, high_res = aligned_crop_pair(astronaut, top, left, lr_size, SCALE)
    assert low_res.shape == (3, lr_size, lr_size) and high_res.shape == (3, SCALE * lr_size, SCALE * lr_size)
    expected_low_res = full_low_res[:, top : top + lr_size, left : left + lr_size]
    # Equal up to float rounding: at most an occasional pixel one uint8 level apart.
    difference = (low_res - expected_low_res).abs()
    assert difference.max() <= 1 / 255 + 1e-6 and (difference > 0).float().mean() < 1e-3
    hr_top, hr_left = SCALE * top, SCALE * left
    assert torch.equal(high_res, astronaut[:, hr_top : hr_top + SCALE * lr_size, hr_left : hr_left + SCALE * lr_size])


def test_aligned_crop_pair_rejects_crops_outside_the_image(astronaut):
    with pytest.raises(ValueError, match="does not fit"):
        aligned_crop_pair(astronaut, 100, 0, 29, SCALE)  # 100 + 29 > 128 LR rows
    with pytest.raises(ValueError, match="does not fit"):
        aligned_crop_pair(astronaut, -1, 0, 8, SCALE)


def test_center_crop_offsets_round_like_torchvision_center_crop():
    assert center_crop_offsets(128, 128, 64) == (32, 32)
    # torchvision: int(round((h - size) / 2)); Python rounds halves to even.
    assert center_crop_offsets(69, 70, 64) == (2, 3)  # round(2.5) = 2, round(3.0) = 3
    assert center_crop_offsets(71, 64, 64) == (4, 0)  # round(3.5) = 4
    with pytest.raises(ValueError, match="does not fit"):
        center_crop_offsets(63, 100, 64)


def test_center_crop_pair_hr_offset_is_exactly_scale_times_the_lr_offset(astronaut):
    image = astronaut[:, :508, :500]  # LR grid 127 x 125: odd margins
    lr_size = 16
    low_res, high_res = center_crop_pair(image, lr_size, SCALE)
    top, left = center_crop_offsets(127, 125, lr_size)
    hr_rows, hr_cols = slice(SCALE * top, SCALE * (top + lr_size)), slice(SCALE * left, SCALE * (left + lr_size))
    assert torch.equal(high_res, image[:, hr_rows, hr_cols])
    expected_low_res = degrade(image, SCALE)[:, top : top + lr_size, left : left + lr_size]
    assert (low_res - expected_low_res).abs().max() <= 1 / 255 + 1e-6
    # With a stored LR image the same crops come out.
    stored_low_res = degrade(image, SCALE)
    low_res_stored, high_res_stored = center_crop_pair(image, lr_size, SCALE, lr_image=stored_low_res)
    assert torch.equal(low_res_stored, expected_low_res) and torch.equal(high_res_stored, high_res)
    with pytest.raises(ValueError, match="must be 127x125"):
        center_crop_pair(image, lr_size, SCALE, lr_image=stored_low_res[:, :100])


def test_random_dihedral_applies_one_symmetry_to_lr_and_hr_alike(astronaut):
    low_res, high_res = aligned_crop_pair(astronaut, 40, 40, 16, SCALE)
    seen = set()
    for seed in range(40):
        lr_aug, hr_aug = random_dihedral((low_res, high_res), torch.Generator().manual_seed(seed))
        # LR and HR got the same transform: degrading the augmented HR crop gives the augmented LR crop (interior).
        inner = slice(3, -3)
        assert (degrade(hr_aug, SCALE)[:, inner, inner] - lr_aug[:, inner, inner]).abs().max() <= 1 / 255 + 1e-6
        seen.add(hashlib.sha1(lr_aug.numpy().tobytes()).hexdigest())
    assert len(seen) == 8, "flip x four rotations: all eight symmetries of the square"
    unchanged = random_dihedral((low_res,), torch.Generator().manual_seed(0), flip=False, rotate=False)[0]
    assert torch.equal(unchanged, low_res)


def test_sample_seed_depends_on_seed_epoch_and_image_only():
    assert sample_seed(0, 0, "a.png") == sample_seed(0, 0, "a.png")
    seeds = {sample_seed(0, 0, "a.png"), sample_seed(1, 0, "a.png"), sample_seed(0, 1, "a.png")}
    seeds.add(sample_seed(0, 0, b"x"))
    assert len(seeds) == 4
    assert all(0 <= seed < 2**63 for seed in seeds)


# ----------------------------------------------------------------------------------------------------------------------
# Datasets plumbing
# ----------------------------------------------------------------------------------------------------------------------


def _pair_fingerprints(batches):
    """Order-free identity of the (lr, hr) pairs in some batches."""
    fingerprints = []
    for batch in batches:
        for low_res, high_res in zip(batch["lr"], batch["hr"]):
            fingerprints.append(hashlib.sha1(low_res.numpy().tobytes() + high_res.numpy().tobytes()).hexdigest())
    return sorted(fingerprints)


def test_inspect_dataset_skips_and_counts_bad_images_and_converts_modes(photo_folder, cache_dir):
    dataset = load_image_dataset(data_dir=str(photo_folder), cache_dir=cache_dir)
    assert len(dataset) == 10
    usable, report = inspect_dataset(dataset, "image", lr_size=16, scale=SCALE)
    assert len(usable) == 7 and report.total == 10 and report.num_usable == 7
    assert report.skipped == {PROBLEM_UNREADABLE: 2, PROBLEM_TOO_SMALL: 1}
    sixteen_bit_mode = "I;16" if "I;16" in report.converted else "I"  # how PIL opens a 16-bit grey PNG
    assert report.converted == {"L": 2, "RGBA": 1, "P": 1, sixteen_bit_mode: 1}
    assert "7 of 10 images usable" in report.summary() and "2 unreadable" in report.summary()
    assert any("truncated.png" in name for name in report.examples[PROBLEM_UNREADABLE])
    assert any("tiny.png" in name for name in report.examples[PROBLEM_TOO_SMALL])


def test_map_style_and_streaming_datasets_give_the_same_batches(photo_folder, cache_dir):
    lr_size = 8
    map_style = load_image_dataset(data_dir=str(photo_folder), cache_dir=cache_dir)
    map_style, map_transform, _ = prepare_train_dataset(map_style, "image", lr_size, SCALE, seed=3)
    streaming = load_image_dataset(data_dir=str(photo_folder), cache_dir=cache_dir, streaming=True)
    streaming, stream_transform, _ = prepare_train_dataset(streaming, "image", lr_size, SCALE, seed=3)

    map_batches = list(torch.utils.data.DataLoader(map_style, batch_size=3, shuffle=True))
    stream_batches = list(torch.utils.data.DataLoader(streaming, batch_size=3))
    for batches in (map_batches, stream_batches):
        assert [len(batch["lr"]) for batch in batches] == [3, 3, 2]  # the 8 usable images (tiny.png fits 32 px)
        for batch in batches:
            assert set(batch) == {"lr", "hr"}
            assert batch["lr"].dtype == batch["hr"].dtype == torch.float32
            assert batch["lr"].shape[1:] == (3, lr_size, lr_size) and batch["hr"].shape[1:] == (3, 32, 32)
            assert 0 <= batch["lr"].min() and batch["hr"].max() <= 1
    # The crops depend on (seed, epoch, image), not on the order or the mode: the same pairs come out.
    assert _pair_fingerprints(map_batches) == _pair_fingerprints(stream_batches)
    # Streaming skips and counts the bad files as it meets them.
    assert stream_transform.report.skipped == {PROBLEM_UNREADABLE: 2}
    # A new epoch gives new crops.
    map_transform.set_epoch(1)
    assert _pair_fingerprints(torch.utils.data.DataLoader(map_style, batch_size=3)) != _pair_fingerprints(map_batches)


def test_hub_style_dataset_with_embedded_image_bytes(tmp_path, photo_folder, cache_dir):
    """`dataset_name` loads like a Hub repo of parquet files (images embedded as bytes, splits from the file names)."""
    import datasets

    repo = tmp_path / "hub_style_repo" / "data"
    repo.mkdir(parents=True)
    for split, names in (("train", ["astronaut.png", "coffee_rgba.png", "truncated.png"]), ("validation", ["coins.png"])):
        cells = [{"bytes": (photo_folder / name).read_bytes(), "path": name} for name in names]
        table = datasets.Dataset.from_dict({"photo": cells, "caption": names}).cast_column("photo", datasets.Image())
        table.to_parquet(str(repo / f"{split}-00000-of-00001.parquet"))
    train = load_image_dataset(dataset_name=str(repo.parent), image_column="photo", cache_dir=cache_dir)
    assert train.column_names == ["photo"] and train[0]["photo"]["bytes"] is not None  # embedded, as on the Hub
    train, transform, report = prepare_train_dataset(train, "photo", 8, SCALE, seed=0)
    assert len(train) == 2 and report.skipped == {PROBLEM_UNREADABLE: 1}
    batches = list(torch.utils.data.DataLoader(train, batch_size=2, shuffle=True))
    assert batches[0]["lr"].shape == (2, 3, 8, 8) and batches[0]["hr"].shape == (2, 3, 32, 32)
    # Embedded images seed their crops by their bytes, so the pairs do not depend on the order.
    assert _pair_fingerprints(batches) == _pair_fingerprints(torch.utils.data.DataLoader(train, batch_size=1))
    validation = load_image_dataset(dataset_name=str(repo.parent), split="validation", image_column="photo")
    low_res, high_res, _, _ = load_validation_pairs(validation, "photo", num_images=4, lr_size=8, scale=SCALE)
    assert low_res.shape == (1, 3, 8, 8) and high_res.shape == (1, 3, 32, 32)


def test_pairs_do_not_depend_on_data_loader_workers(photo_folder, cache_dir):
    dataset = load_image_dataset(data_dir=str(photo_folder), cache_dir=cache_dir)
    dataset, transform, _ = prepare_train_dataset(dataset, "image", 8, SCALE, seed=5)
    transform.set_epoch(2)  # set before the workers start, as train_sr3.py does every epoch
    in_process = _pair_fingerprints(torch.utils.data.DataLoader(dataset, batch_size=2))
    with_workers = _pair_fingerprints(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2))
    assert in_process == with_workers


def test_cached_images_give_the_same_batches_in_the_same_order_and_are_decoded_once(photo_folder, cache_dir, monkeypatch):
    import sr3_diffusers.data as data_module

    decoded = []
    decode = data_module.decode_image
    monkeypatch.setattr(data_module, "decode_image", lambda value: decoded.append(value) or decode(value))
    batches, decodes = {}, {}
    for cache_images in (False, True):
        dataset = load_image_dataset(data_dir=str(photo_folder), cache_dir=cache_dir)
        dataset, transform, _ = prepare_train_dataset(dataset, "image", 8, SCALE, seed=5, cache_images=cache_images)
        decoded.clear()
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(1))
        epochs = []
        for epoch in range(2):
            transform.set_epoch(epoch)
            epochs.append([(batch["lr"], batch["hr"]) for batch in loader])
        batches[cache_images], decodes[cache_images] = epochs, len(decoded)
    assert decodes == {False: 16, True: 0}  # one decode per pair, or none after the up-front one
    assert len(transform.decoded_images) == 8  # every usable image
    for uncached, cached in zip(batches[False], batches[True]):
        for (lr_a, hr_a), (lr_b, hr_b) in zip(uncached, cached):
            assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
    with pytest.raises(ValueError, match="cache_images needs a map-style dataset"):
        streaming = load_image_dataset(data_dir=str(photo_folder), cache_dir=cache_dir, streaming=True)
        prepare_train_dataset(streaming, "image", 8, SCALE, seed=0, cache_images=True)


def test_paired_random_crop_is_a_function_of_seed_epoch_and_image(photo_folder):
    transform = PairedRandomCrop("image", lr_size=12, scale=SCALE, seed=0)
    cells = [{"path": str(photo_folder / name), "bytes": None} for name in ("astronaut.png", "coffee_rgba.png")]
    forward = transform({"image": cells})
    backward = transform({"image": cells[::-1]})
    assert torch.equal(forward["hr"][0], backward["hr"][1]) and torch.equal(forward["lr"][1], backward["lr"][0])
    transform.set_epoch(1)
    assert not torch.equal(transform({"image": cells})["hr"][0], forward["hr"][0])
    with pytest.raises(ValueError, match="unreadable"):  # an inspected dataset never feeds a bad image
        transform({"image": [{"path": str(photo_folder / "truncated.png"), "bytes": None}]})


@pytest.mark.parametrize("streaming", [False, True])
def test_crop_larger_than_every_image_is_a_clear_error(photo_folder, cache_dir, streaming):
    dataset = load_image_dataset(data_dir=str(photo_folder), cache_dir=cache_dir, streaming=streaming)
    message = "the 1024x1024 HR crop is larger than every image: the largest crop these images hold is 512x512"
    with pytest.raises(ValueError, match=message):
        prepare_train_dataset(dataset, "image", lr_size=256, scale=SCALE, seed=0)


def test_loading_errors_are_clear(tmp_path, photo_folder, cache_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files found"):
        load_image_dataset(data_dir=str(tmp_path / "empty"), cache_dir=cache_dir)
    with pytest.raises(ValueError, match="has no column 'hr'"):
        load_image_dataset(data_dir=str(photo_folder), image_column="hr", cache_dir=cache_dir)
    with pytest.raises(ValueError, match="exactly one of"):
        load_image_dataset(cache_dir=cache_dir)
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "broken.png").write_bytes((photo_folder / "astronaut.png").read_bytes()[:2000])
    with pytest.raises(ValueError, match="no usable image"):
        dataset = load_image_dataset(data_dir=str(only_bad), cache_dir=cache_dir)
        prepare_train_dataset(dataset, "image", 8, SCALE, seed=0)


def test_load_validation_pairs_takes_the_first_usable_images_centre_cropped(photo_folder, cache_dir):
    dataset = load_image_dataset(data_dir=str(photo_folder), cache_dir=cache_dir)
    low_res, high_res, names, report = load_validation_pairs(dataset, "image", num_images=3, lr_size=16, scale=SCALE)
    assert low_res.shape == (3, 3, 16, 16) and high_res.shape == (3, 3, 64, 64)
    assert [name.rsplit("/", 1)[-1] for name in names] == ["astronaut.png", "camera.png", "camera_16bit.png"]
    astronaut = torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1).float() / 255.0
    expected_low_res, expected_high_res = center_crop_pair(astronaut, 16, SCALE)
    assert torch.equal(low_res[0], expected_low_res) and torch.equal(high_res[0], expected_high_res)
    # 16-bit and 8-bit versions of the same photo give (nearly) the same pair.
    assert (high_res[1] - high_res[2]).abs().max() < 1e-6
    assert report.num_usable == 3
