"""The data dir is private: created 0700, and tightened at service start when an older version (or
a hand-made directory) left it or ctwin's files in it open to other users.

Why tighten rather than only warn: the store holds real user names and the salt that keeps job
exports pseudonymous; a warning on every start of a service nobody watches protects nothing.
Only the data dir and the files ctwin keeps in it are touched (the store and its write-ahead log
are tightened by the store itself when it opens; a models dir set in the config is left as it is,
it may be shared on purpose), never other files that happen to live there, and never a shared
directory such as /tmp (telemetry.filemodes.tighten explains each change in the log).
"""

from __future__ import annotations

from pathlib import Path

from service.config import LoadedConfig
from telemetry.filemodes import make_private_dir, tighten

__all__ = ["secure_data_dir"]


def secure_data_dir(loaded: LoadedConfig, data_dir: str | Path | None = None) -> list[Path]:
    """Create the data dir 0700, or tighten it and ctwin's own files in it; returns what changed."""
    root = make_private_dir(loaded.data_dir(data_dir))
    tokens = loaded.tokens_path(data_dir)
    paths = [root, tokens, tokens.with_name(tokens.name + ".lock"), root / "pseudonym.salt"]
    if loaded.config.models.dir is None:  # a configured models dir may be shared on purpose
        models = loaded.models_path(data_dir)
        paths.append(models)
        if models.is_dir():
            paths += sorted(p for p in models.iterdir() if p.is_file())
    return [p for p in paths if tighten(p)]
