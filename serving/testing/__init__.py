"""Support for tests and benchmarks: random checkpoints and a fake engine. Never imported
by the serving path itself."""
