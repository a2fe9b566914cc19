"""svgan.export"""
