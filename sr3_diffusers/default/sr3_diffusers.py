# The model folder inside the installed sr3_diffusers package: its pipeline is the package's own.
from sr3_diffusers import SR3Pipeline  # noqa: F401
