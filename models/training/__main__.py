"""``python -m models.training``: train the demo checkpoint, then evaluate it."""

from models.training import evaluate, train

if __name__ == "__main__":
    train.main()
    evaluate.main()
