#!/usr/bin/env bash
# The shipped model's perceptual predictor (docs/recipe.md sections 10 and 13): train_perceptual_predictor.sh (the
# shipped faithful predictor, train_faithful_more.sh's, trained further with L1 + LPIPS-VGG, weight 1) plus a
# PatchGAN term (weight 0.1; the discriminator at a learning rate of 5e-4, five times the predictor's). ship.py takes
# the checkpoint named in the model card. Needs the
# VGG weights once (see train_perceptual_refine.sh). Resumes from its latest checkpoint when rerun. Measured as:
#   python -c 'from sr3_diffusers import SR3Pipeline, SR3PredictorModel; SR3Pipeline.from_pretrained("sr3_diffusers/default",
#     predictor=SR3PredictorModel.from_pretrained("runs/predictor_adversarial/checkpoint-400", subfolder="predictor"), faithful_predictor=None,
#     frequency_split_sigma=None).save_pretrained("runs/pipe")'
#   python benchmarks/quality.py --model runs/pipe --settings "dpmsolver++:4,strength=0" dpmsolver++:4
cd "$(dirname "$0")"
exec bash train_perceptual_predictor.sh --adversarial_loss_weight 0.1 --discriminator_learning_rate 5e-4 \
  --max_train_steps 500 --checkpointing_steps 100 --checkpoints_total_limit 10 \
  --output_dir runs/predictor_adversarial --seed 16 "$@"
