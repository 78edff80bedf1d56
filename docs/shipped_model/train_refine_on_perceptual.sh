#!/usr/bin/env bash
# Experiment of docs/recipe.md section 7 (not shipped): stage 3 (train_more.sh: the shipped UNet trained further, plain
# L1 on v) with the w = 3 perceptual predictor as its frozen condition instead of the shipped one, so that the
# diffusion learns the residual that predictor leaves. Run train_perceptual_predictor.sh --perceptual_loss_weight 3
# --output_dir runs/predictor_perceptual_w3 first. Resumes from its latest checkpoint when rerun. Measured as:
#   python benchmarks/quality.py --model runs/refine_on_perceptual --settings "dpmsolver++:4,consistency=1" \
#     "dpmsolver++:1,consistency=1" "dpmsolver++:4,strength=0"
cd "$(dirname "$0")"
exec bash train_more.sh --predictor_model_name_or_path runs/predictor_perceptual_w3 --output_dir runs/refine_on_perceptual \
  --max_train_steps 1000 --checkpointing_steps 250 --validation_steps 1000 --validation_inference_steps 4 --seed 4 "$@"
