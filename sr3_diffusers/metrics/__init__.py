"""Evaluation metrics for SR3, each an `evaluate` module in its own folder, loaded by path.

`evaluate.load("<this folder>/psnr")` (also `ssim`, `consistency`, `fid`, `inception_score`), or instantiate the class
directly, e.g. `sr3_diffusers.metrics.psnr.psnr.PSNR()`. `inception.py` loads the TF-Inception network for FID and IS.
"""
