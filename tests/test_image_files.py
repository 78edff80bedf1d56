"""`image_files`: what a file carries besides RGB pixels survives reading and writing (real files, written here)."""

import numpy as np
import PIL.Image
import PIL.ImageCms
import pytest

from sr3_diffusers.image_files import read_image_file, resize_lanczos, write_image_file


ORIENTATION = 0x0112
MAKE = 0x010F


def srgb_profile() -> bytes:
    return PIL.ImageCms.ImageCmsProfile(PIL.ImageCms.createProfile("sRGB")).tobytes()


def test_exif_orientation_is_applied_and_removed(tmp_path):
    stored = PIL.Image.fromarray(np.arange(8 * 16 * 3, dtype=np.uint8).reshape(8, 16, 3))  # 16 wide, 8 high
    exif = stored.getexif()
    exif[ORIENTATION], exif[MAKE] = 6, "Phone"
    stored.save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    image_file = read_image_file(tmp_path / "portrait.jpg")
    assert image_file.size == (8, 16)  # displayed upright: 8 wide, 16 high
    with PIL.Image.open(tmp_path / "portrait.jpg") as decoded:
        upright = np.asarray(decoded.transpose(PIL.Image.Transpose.ROTATE_270), dtype=np.float32) / 255
    np.testing.assert_array_equal(image_file.pixels, upright)
    kept = PIL.Image.Exif()
    kept.load(image_file.exif)
    assert ORIENTATION not in kept and kept[MAKE] == "Phone"


def test_profile_exif_and_scaled_dpi_are_written_where_the_format_holds_them(tmp_path):
    profile = srgb_profile()
    source = PIL.Image.new("RGB", (6, 4), (200, 30, 60))
    exif = source.getexif()
    exif[MAKE] = "Camera"
    source.save(tmp_path / "in.jpg", icc_profile=profile, exif=exif, dpi=(72, 72))
    image_file = read_image_file(tmp_path / "in.jpg")
    pixels = resize_lanczos(image_file.pixels, (24, 16))
    for name, expected_dpi in (("out.png", 288), ("out.jpg", 288), ("out.tiff", 288), ("out.webp", None)):
        assert write_image_file(tmp_path / name, pixels, None, image_file, factor=4) == []
        with PIL.Image.open(tmp_path / name) as written:
            assert written.info["icc_profile"] == profile
            assert written.getexif()[MAKE] == "Camera"
            dpi = written.info.get("dpi")
            # PNG stores dots per metre, hence the tolerance.
            assert (dpi is None) if expected_dpi is None else dpi[0] == pytest.approx(expected_dpi, abs=0.05)


def test_rgba_keeps_its_alpha_and_a_jpeg_says_it_drops_it(tmp_path):
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., :3] = 120
    rgba[:, 3:, 3] = 255
    PIL.Image.fromarray(rgba).save(tmp_path / "in.png")
    image_file = read_image_file(tmp_path / "in.png")
    assert image_file.pixels.shape == (4, 6, 3)
    np.testing.assert_array_equal(image_file.alpha, rgba[..., 3] / 255)
    write_image_file(tmp_path / "out.png", image_file.pixels, image_file.alpha, image_file, factor=1)
    with PIL.Image.open(tmp_path / "out.png") as written:
        assert written.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(written), rgba)
    notes = write_image_file(tmp_path / "out.jpg", image_file.pixels, image_file.alpha, image_file, factor=1)
    assert len(notes) == 1 and "no alpha channel" in notes[0]
    assert PIL.Image.open(tmp_path / "out.jpg").mode == "RGB"


def test_sixteen_bit_greyscale_stays_sixteen_bit(tmp_path):
    values = np.arange(4 * 6, dtype=np.uint16).reshape(4, 6) * 2731 + 7  # not multiples of 257: 8 bits cannot hold them
    PIL.Image.fromarray(values).save(tmp_path / "scan.png")
    image_file = read_image_file(tmp_path / "scan.png")
    assert image_file.bits == 16 and image_file.is_greyscale
    for name in ("out.png", "out.tif"):
        write_image_file(tmp_path / name, image_file.pixels, None, image_file, factor=1)
        with PIL.Image.open(tmp_path / name) as written:
            assert written.mode == "I;16"
            np.testing.assert_array_equal(np.asarray(written), values)
    notes = write_image_file(tmp_path / "out.jpg", image_file.pixels, None, image_file, factor=1)
    assert "holds 8" in notes[0] and PIL.Image.open(tmp_path / "out.jpg").mode == "L"


def test_palette_transparency_and_greyscale_alpha(tmp_path):
    palette = PIL.Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "p.png", transparency=0)
    image_file = read_image_file(tmp_path / "p.png")
    assert image_file.alpha[0, 0] == 0 and image_file.alpha[1, 1] == 1 and image_file.pixels.shape == (4, 4, 3)
    PIL.Image.new("LA", (4, 4), (90, 128)).save(tmp_path / "la.png")
    image_file = read_image_file(tmp_path / "la.png")
    assert image_file.is_greyscale and image_file.alpha[0, 0] == pytest.approx(128 / 255)


def test_a_mismatched_profile_is_not_copied(tmp_path):
    # A grey output cannot carry an RGB profile (colour-managed viewers would misread it).
    PIL.Image.new("L", (4, 4), 100).save(tmp_path / "grey.png", icc_profile=srgb_profile())
    image_file = read_image_file(tmp_path / "grey.png")
    assert image_file.icc_profile == srgb_profile()
    write_image_file(tmp_path / "out.png", image_file.pixels, None, image_file, factor=1)
    assert "icc_profile" not in PIL.Image.open(tmp_path / "out.png").info


def test_an_unknown_extension_and_a_failed_write_leave_nothing_behind(tmp_path):
    image_file = read_image_file_of(tmp_path, PIL.Image.new("RGB", (4, 4)))
    with pytest.raises(ValueError, match="unknown image extension '.bmp'"):
        write_image_file(tmp_path / "out.bmp", image_file.pixels, None, image_file, factor=1)
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(OSError):
        write_image_file(tmp_path / "taken" / "out.png", image_file.pixels, None, image_file, factor=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.png", "taken"]


def read_image_file_of(folder, image):
    image.save(folder / "in.png")
    return read_image_file(folder / "in.png")


def test_lanczos_resize_is_exact_in_size_and_stays_in_range():
    pixels = np.random.default_rng(0).random((10, 7, 3), dtype=np.float32)
    resized = resize_lanczos(pixels, (18, 25))
    assert resized.shape == (25, 18, 3) and resized.min() >= 0 and resized.max() <= 1
    assert resize_lanczos(pixels[..., 0], (14, 20)).shape == (20, 14)
    np.testing.assert_allclose(resize_lanczos(np.full((5, 5), 0.25, np.float32), (9, 9)), 0.25, atol=1e-6)
