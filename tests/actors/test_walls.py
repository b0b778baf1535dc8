"""The runtime stands on its own: importing it loads no web framework and nothing of the chat
(make lint checks every wall with import-linter; this is the one an attendee feels)."""

import subprocess
import sys

from accord_app.settings import PROJECT_DIR


def test_importing_the_runtime_loads_no_web_framework_and_no_chat() -> None:
    probe = (
        "import sys, accord_app.actors, accord_app.actors.gates\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'fastapi', 'starlette',"
        " 'uvicorn'} or m.startswith(('accord_app.chat', 'accord_app.app', 'accord_app.api'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
