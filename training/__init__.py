"""svgan.training"""
