"""svgan.runtime: bundle loading, inference backends, GRU stepping, offset trick, face alignment, video.

Torch-free on its onnxruntime/TensorRT path; it imports neither `svgan.training` nor `svgan.export`.
"""
