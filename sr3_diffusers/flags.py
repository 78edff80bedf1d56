"""One flag style for the package's commands: `--tile-size` and `--tile_size` both work everywhere.

`sr3-upscale` declares its flags with dashes, `sr3-evaluate` and `train_sr3.py` with underscores (as diffusers' example
scripts do); users should not have to remember which. `--help` shows each flag as it was declared.
"""

import argparse


def accept_either_spelling(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make every long option of `parser` also answer to its spelling with `-` and `_` swapped; call it after the last
    `add_argument`. The extra spellings are registered as aliases only, so `--help` and error messages are unchanged."""
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                for alias in ("--" + option[2:].replace("_", "-"), "--" + option[2:].replace("-", "_")):
                    parser._option_string_actions.setdefault(alias, action)
    return parser
