"""Fine-tuning language models on news analysis: data, full / LoRA / adapter training, evaluation and export."""
