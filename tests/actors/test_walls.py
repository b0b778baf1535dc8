"""The runtime stands on its own, and the chat's core needs no web framework: importing them
loads none (make lint checks every wall with import-linter; these are the ones an attendee
feels)."""

import subprocess
import sys

from accord_app.settings import PROJECT_DIR

WEB_FRAMEWORKS = "{'fastapi', 'starlette', 'uvicorn', 'httpx'}"


def loaded_by(modules: str, also: tuple[str, ...]) -> str:
    """The web frameworks' modules, and Accord's modules under `also`, that importing
    `modules` loads in a fresh interpreter."""
    probe = (
        f"import sys, {modules}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {WEB_FRAMEWORKS}"
        f" or m.startswith({also!r})))"
    )
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_importing_the_runtime_loads_no_web_framework_and_no_chat() -> None:
    accord = ("accord_app.chat", "accord_app.app", "accord_app.api", "accord_app.web")
    also = (*accord, "accord_app.catalog")
    assert loaded_by("accord_app.actors, accord_app.actors.gates", also) == "[]"


def test_importing_the_chats_core_loads_no_web_framework() -> None:
    core = "accord_app.chat.channel, accord_app.chat.sharding"
    assert loaded_by(core, ("accord_app.chat.http", "accord_app.web", "accord_app.app")) == "[]"
