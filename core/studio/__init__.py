"""``tunewright studio``: a web app that drives the same commands as the CLI, for people
who never open a terminal. See docs/studio.md."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from tunewright.errors import ConfigError

PASSWORD_ENV = "TUNEWRIGHT_STUDIO_PASSWORD"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def run_studio(overrides: list[str]) -> int:
    """Compose the ``studio`` config, then serve the app until Ctrl-C; the commands it
    started are stopped on the way out (a training stopped so resumes from its checkpoint)."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("studio needs gradio: pip install 'tunewright[studio]' (scripts/setup.sh does)")
    from tunewright.config import compose_studio_config
    from tunewright.plugin_manager import get_plugins

    plugins = get_plugins()
    settings = compose_studio_config(overrides, plugins).studio
    auth = studio_auth(settings.host, settings.auth)
    workspace = Path(settings.workspace).expanduser().resolve()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a closed network
    os.environ.setdefault("GRADIO_TEMP_DIR", str(workspace / ".incoming"))  # uploads stay in the workspace

    from tunewright.studio.actions import Studio
    from tunewright.studio.app import launch
    from tunewright.studio.workspace import Workspace

    studio = Studio(Workspace(workspace), settings.max_upload_mb, plugins)
    print(f"tunewright studio: http://{settings.host}:{settings.port}  (workspace {workspace}; Ctrl-C stops)")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop ends it like Ctrl-C
    try:
        launch(studio, settings.host, settings.port, auth)
    except KeyboardInterrupt:
        pass
    finally:
        studio.jobs.stop_all()
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def studio_auth(host: str, wanted: bool) -> tuple[str, str] | None:
    """The login the app asks for; a bind beyond this machine without one is refused."""
    if not wanted:
        if host not in LOOPBACK:
            raise ConfigError(
                f"studio.host={host}: the app would be open to the network without a password; "
                f"set studio.auth=true and the password in ${PASSWORD_ENV}"
            )
        return None
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise ConfigError(f"studio.auth=true: set the password in ${PASSWORD_ENV} first")
    return ("tunewright", password)
