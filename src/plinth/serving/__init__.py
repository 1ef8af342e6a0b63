"""Serving: the inference API, micro-batching, traffic routing, prediction logging, batch
inference, model optimization and deployment targets."""
