"""Reading the data files (tariffs, offers, texts, prompts): one way to find them and to fail."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path


def data_path(given: str | os.PathLike | None, env_var: str, default: Path) -> Path:
    """An explicit path, else the one the environment names, else the file shipped beside the code."""
    return Path(given or os.environ.get(env_var) or default)


def read_toml(path: Path, error: type[Exception]) -> dict:
    """The file's tables; a syntax error becomes `error` naming the file, at start-up."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
