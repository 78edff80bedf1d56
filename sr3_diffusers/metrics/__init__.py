"""Evaluation metrics for SR3, each an `evaluate` module in its own folder, loaded by path.

`evaluate.load("<this folder>/psnr")` (also `ssim`, `lpips`, `consistency`, `sharpness`, `fid`, `inception_score`), or
instantiate the class directly, e.g. `sr3_diffusers.metrics.psnr.psnr.PSNR()`. The modules import what they share
(`image_inputs.py`: the input check, the Y channel, the border crop) from the installed `sr3_diffusers` package;
`inception.py` loads the TF-Inception network for FID and IS; `lpips/` ships its own converted AlexNet weights.
"""
