"""svgan.runtime"""
