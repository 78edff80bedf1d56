#!/usr/bin/env bash
# docs/recipe.md section 9: a new refine UNet for the shipped L1 predictor, trained from scratch. The UNet cuts its
# input into 4x4 patches (unet_patch4_config.json: it runs at the low resolution, like the predictor, 6.7M
# parameters). Beside SR3's L1 loss on v at random noise levels, the image one sampling step from pure noise returns
# (gamma = 0.006, --perceptual_gamma) is trained like a perceptual upscaler: L1 to the photo (--image_loss_weight),
# LPIPS-VGG (--perceptual_loss_weight) and, unless --adversarial_loss_weight is overridden away, a PatchGAN term.
# Needs the VGG weights once (see train_perceptual_refine.sh). Resumes from its latest checkpoint when rerun.
# Measured as:
#   python benchmarks/quality.py --model runs/one_step_adversarial --settings dpmsolver++:1 "dpmsolver++:1,strength=0"
cd "$(dirname "$0")/../.."
exec python train_sr3.py --train_data_dir photos/train --preset sr3-64-256 \
  --unet_config docs/shipped_model/unet_patch4_config.json \
  --predictor_model_name_or_path docs/shipped_model/l1_predictor --residual_scale 0.1 --prediction_type v_prediction --snr_gamma 5 \
  --perceptual_gamma 0.006 --image_loss_weight 1 --perceptual_loss_weight 1 \
  --adversarial_loss_weight 0.1 --discriminator_learning_rate 1e-4 \
  --resolution 128 --train_batch_size 8 --max_train_steps 900 --learning_rate 2e-4 --lr_min 1e-6 --loss l1 \
  --ema_decay 0.999 --ema_warmup --cache_images --output_dir runs/one_step_adversarial --checkpointing_steps 100 \
  --checkpoints_total_limit 10 --report_to tensorboard --seed 11 --resume_from_checkpoint latest "$@"
