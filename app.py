"""StreamDesk: a self-hosted browser chat that streams replies from large language models.

``app`` is the one global, for gunicorn (``gunicorn -c gunicorn.conf.py app:app``) and for
``flask --app app db upgrade``. ``python app.py`` runs the same production server on HOST:PORT
(default 127.0.0.1:5000). The app itself is built by ``streamdesk.web.create_app``.
"""
from __future__ import annotations

import atexit
import os
import sys

from dotenv import load_dotenv

from providers.errors import ConfigurationError
from streamdesk.logs import configure_logging
from streamdesk.settings import SettingsError
from streamdesk.web import create_app


def _serve() -> None:
    """Run gunicorn exactly as the Procfile does, on HOST:PORT."""
    here = os.path.dirname(os.path.abspath(__file__))
    bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--chdir", here,
                              "-c", os.path.join(here, "gunicorn.conf.py"), "--bind", bind,
                              "app:app"])


# A .env file beside this one fills in variables the environment does not set (.env.example);
# PYTHON_DOTENV_DISABLED=1 ignores it (the tests do).
load_dotenv(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".env"))
try:
    app = create_app()
except (ConfigurationError, SettingsError) as error:
    # One clear line instead of a traceback. Exit code 3 tells gunicorn's arbiter that the
    # worker cannot boot, so it stops instead of restarting it forever.
    print(f"StreamDesk cannot start: {error}", file=sys.stderr)
    sys.exit(3)
configure_logging(app.extensions["streamdesk"].settings.log_level)
atexit.register(app.extensions["streamdesk"].registry.close)

if __name__ == "__main__":
    _serve()
