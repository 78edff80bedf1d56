"""Outputs of `benchmarks/peers.py --save_images DIR` side by side, zoomed in, to look at rather than measure.

One row per photo, one column per method (in `--methods` order), each a `--crop`-pixel window of the 256-pixel output
around its centre, enlarged `--zoom` times with nearest-neighbour so that single pixels stay visible; a label above
each column.

    python benchmarks/side_by_side.py outputs/peers_images --output docs/peers_comparison.png
"""

import argparse
import sys
from pathlib import Path

import PIL.Image
import PIL.ImageDraw


LABELS = {
    "bicubic": "bicubic",
    "span": "SPAN x4",
    "realsr": "RealSR",
    "realesrgan": "Real-ESRGAN",
    "default": "SR3 default",
    "pure": "SR3 pure",
    "hr": "original",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", type=Path, help="The --save_images folder of benchmarks/peers.py.")
    parser.add_argument("--methods", nargs="+", default=list(LABELS), help="Columns, in order (file names there).")
    parser.add_argument("--photos", nargs="+", default=None, help="Image ids (sub-folders) to show; default: all.")
    parser.add_argument("--crop", type=int, default=96, help="Side of the window cut from each 256-pixel output.")
    parser.add_argument("--zoom", type=int, default=2, help="Nearest-neighbour enlargement of the window.")
    parser.add_argument("--output", type=Path, default=Path("outputs/side_by_side.png"))
    return parser.parse_args(argv)


def main(args) -> int:
    folders = [args.images / name for name in args.photos] if args.photos else sorted(args.images.iterdir())
    folders = [folder for folder in folders if folder.is_dir()]
    if not folders:
        print(f"side_by_side.py: error: no image folders in {args.images}", file=sys.stderr)
        return 2
    methods = [name for name in args.methods if all((folder / f"{name}.png").is_file() for folder in folders)]
    tile, label_height = args.crop * args.zoom, 14
    sheet = PIL.Image.new("RGB", (tile * len(methods), label_height + tile * len(folders)), "white")
    draw = PIL.ImageDraw.Draw(sheet)
    for column, name in enumerate(methods):
        draw.text((column * tile + 4, 1), LABELS.get(name, name), fill="black")
        for row, folder in enumerate(folders):
            image = PIL.Image.open(folder / f"{name}.png").convert("RGB")
            left, top = (image.width - args.crop) // 2, (image.height - args.crop) // 2
            window = image.crop((left, top, left + args.crop, top + args.crop))
            sheet.paste(window.resize((tile, tile), PIL.Image.NEAREST), (column * tile, label_height + row * tile))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output)
    print(f"side_by_side.py: {len(folders)} photos x {', '.join(methods)} -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
