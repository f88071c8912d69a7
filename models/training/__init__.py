"""The embedded demo checkpoint: training data, tokenizer, training and evaluation.

``make demo-model`` (``python -m models.training``) rebuilds ``models/c2s-demo-pythia``.
"""
