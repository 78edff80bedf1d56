"""Every command accepts `--tile-size` and `--tile_size` alike, and `--help` shows the declared spelling only."""

import argparse
import sys
from pathlib import Path

import pytest

from sr3_diffusers import evaluation
from sr3_diffusers.cli import parse_upscale_args
from sr3_diffusers.flags import accept_either_spelling

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train_sr3  # noqa: E402  (the script, for its parse_args)


def test_both_spellings_reach_the_same_option_and_help_shows_one():
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--tile-size", type=int)
    parser.add_argument("--batch_size", type=int, default=1)
    accept_either_spelling(parser)
    assert parser.parse_args(["--tile_size", "64", "--batch-size=3"]) == argparse.Namespace(tile_size=64, batch_size=3)
    assert parser.parse_args(["--tile-size=32"]).tile_size == 32
    help_text = parser.format_help()
    assert "--tile-size" in help_text and "--tile_size" not in help_text
    assert "--batch_size" in help_text and "--batch-size" not in help_text


def test_sr3_upscale_takes_underscore_flags():
    args = parse_upscale_args(["photo.png", "--tile_size", "64", "--num_inference_steps", "3", "--batch_size", "2"])
    assert (args.tile_size, args.num_inference_steps, args.batch_size) == (64, 3, 2)


def test_sr3_evaluate_takes_dash_flags(tmp_path):
    args = evaluation.parse_args(["--bicubic-only", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "e")])
    assert args.bicubic_only and args.data_dir == str(tmp_path) and args.output_dir == str(tmp_path / "e")


def test_train_sr3_takes_dash_flags(tmp_path):
    args = train_sr3.parse_args(
        ["--train-data-dir", str(tmp_path), "--learning-rate", "3e-4", "--max-train-steps", "5"]
    )
    assert (args.train_data_dir, args.learning_rate, args.max_train_steps) == (str(tmp_path), 3e-4, 5)


def test_an_unknown_flag_is_still_an_error(capsys):
    with pytest.raises(SystemExit):
        parse_upscale_args(["photo.png", "--tile_sise", "64"])
    assert "unrecognized arguments: --tile_sise" in capsys.readouterr().err


def test_each_commands_help_renders_and_shows_the_declared_spelling(capsys):
    for parse, declared, alias in (
        (parse_upscale_args, "--tile-size TILE_SIZE", "--tile_size TILE_SIZE"),
        (evaluation.parse_args, "--data_dir DATA_DIR", "--data-dir DATA_DIR"),
        (train_sr3.parse_args, "--train_data_dir TRAIN_DATA_DIR", "--train-data-dir TRAIN_DATA_DIR"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse(["--help"])
        help_text = capsys.readouterr().out
        assert exit_info.value.code == 0 and declared in help_text and alias not in help_text
