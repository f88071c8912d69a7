"""The ``c2s`` CLI's commands, one module each; `serving.cli` assembles them."""
