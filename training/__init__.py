"""svgan.training: the paper's method — embedding a video into W+, W+ data and synthetic sequences, losses
(WGAN-GP, GAP), the trainer, PCA and evaluation."""
