"""The compared paths, each a child process (``python -m benchmarks.paths.<name>``).

Each child reads a spec JSON (``--spec``), measures, and prints its result as the last
line (JSON). Separate processes keep engine threading (an environment setting of vLLM's
CPU build), memory and start-up times of one path from touching another's.
"""
