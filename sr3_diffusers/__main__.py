"""`python -m sr3_diffusers ...` is `sr3-upscale ...`."""

import sys

from .cli import upscale_main


sys.exit(upscale_main())
