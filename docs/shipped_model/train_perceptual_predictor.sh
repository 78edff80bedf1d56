#!/usr/bin/env bash
# Experiment of docs/recipe.md section 7: the L1 predictor (the shipped faithful_predictor, linked as
# l1_predictor/predictor) trained further from its committed weights with L1 plus an LPIPS-VGG term (weight 1) on its image. Needs the VGG weights once (see
# train_perceptual_refine.sh). Resumes from its latest checkpoint when rerun. Measured as the shipped pipeline with
# this predictor:
#   python -c 'from sr3_diffusers import SR3Pipeline, SR3PredictorModel; SR3Pipeline.from_pretrained("sr3_diffusers/default",
#     predictor=SR3PredictorModel.from_pretrained("runs/predictor_perceptual", subfolder="predictor"), faithful_predictor=None,
#     frequency_split_sigma=None).save_pretrained("runs/perceptual_pipeline")'
#   python benchmarks/quality.py --model runs/perceptual_pipeline --settings dpmsolver++:4 "dpmsolver++:4,strength=0"
cd "$(dirname "$0")/../.."
exec python train_sr3.py --train_data_dir photos/train --train_component predictor \
  --pretrained_model_name_or_path docs/shipped_model/l1_predictor --perceptual_loss_weight 1.0 \
  --resolution 128 --train_batch_size 8 --max_train_steps 600 --learning_rate 1e-4 --lr_min 1e-6 --loss l1 \
  --ema_decay 0.999 --ema_warmup --cache_images --output_dir runs/predictor_perceptual --checkpointing_steps 300 \
  --checkpoints_total_limit 4 --report_to tensorboard --seed 3 --resume_from_checkpoint latest "$@"
