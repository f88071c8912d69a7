"""The embedded demo checkpoint: training data, tokenizer, training and evaluation.

``make demo-model`` (``python -m serving.demo_model``) rebuilds ``models/c2s-demo-pythia``.
"""
