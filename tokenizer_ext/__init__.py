"""Cell-sentence and token layer for C2S: pure, with no serving imports."""
