"""``python -m serving.demo_model``: train the demo checkpoint, then evaluate it."""

from serving.demo_model import evaluate, train

if __name__ == "__main__":
    train.main()
    evaluate.main()
