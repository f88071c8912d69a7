"""The OpenAI-compatible HTTP gateway: a thin FastAPI shell over the serving core."""
