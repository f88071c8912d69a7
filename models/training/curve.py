"""The held-out curve of a training run: cell typing measured while the demo trains.

Teacher-forced on the held-out cells' cell type prompts (template 0, the top of the
trained gene range): the answer's mean loss, and the share of answers whose every token,
EOS included, is the model's top choice. That share is what greedy decoding gets right,
so it tracks the engine's held-out accuracy without starting an engine. It is only
logged (``training.json``), never used to pick a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable

#: steps between two points of the curve
CURVE_EVERY = 200


def answer_scores(model, batch, pad_id: int, collate: Callable) -> tuple[float, int, int]:
    """Summed answer loss, answer tokens and fully-correct answers of one batch."""
    import torch

    ids, mask, weights = collate(batch, pad_id, 0.0)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:]
    token_loss = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), targets, reduction="none"
    )
    answer = weights > 0
    wrong = (logits.argmax(-1) != targets) & answer
    return (
        float((token_loss * answer).sum()),
        int(answer.sum()),
        int((wrong.sum(dim=1) == 0).sum()),
    )


def held_out_point(model, encoded: list, pad_id: int, collate: Callable, size: int = 16):
    """Answer loss per token and greedy-exact share over ``encoded`` (model left in train mode)."""
    import torch

    model.eval()
    loss = tokens = exact = 0
    with torch.no_grad():
        for start in range(0, len(encoded), size):
            batch_loss, batch_tokens, batch_exact = answer_scores(
                model, encoded[start : start + size], pad_id, collate
            )
            loss, tokens, exact = loss + batch_loss, tokens + batch_tokens, exact + batch_exact
    model.train()
    return {"answer_loss": round(loss / tokens, 4), "greedy_exact": round(exact / len(encoded), 4)}
