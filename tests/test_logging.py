"""Logging: the user's own logging configuration (--log-config: JSON, YAML, INI)
in a real process.  The access log's lines: test_access_log.py."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from carpinus.config import Config, ConfigError
from tests.support import apps
from tests.support.processes import Spawner, run_cli

# -- --log-config in a real process ------------------------------------------------------


def _dict_config(log_file: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "CFG %(name)s %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file),
                              "formatter": "plain"}},
        "loggers": {"carpinus": {"handlers": ["file"], "level": "INFO",
                                 "propagate": False}},
    }


def _write_ini(path: Path, log_file: Path) -> None:
    path.write_text(textwrap.dedent(f"""\
        [loggers]
        keys=root,carpinus

        [handlers]
        keys=file

        [formatters]
        keys=plain

        [logger_root]
        level=WARNING
        handlers=

        [logger_carpinus]
        level=INFO
        handlers=file
        qualname=carpinus
        propagate=0

        [handler_file]
        class=FileHandler
        args=({str(log_file)!r},)
        formatter=plain

        [formatter_plain]
        format=CFG %(name)s %(levelname)s %(message)s
        """))


@pytest.mark.parametrize("kind", ["json", "yaml", "ini"])
def test_log_config_file(tmp_path: Path, kind: str) -> None:
    log_file = tmp_path / "carpinus.log"
    config_file = tmp_path / f"logging.{kind}"
    if kind == "json":
        config_file.write_text(json.dumps(_dict_config(log_file)))
    elif kind == "yaml":
        yaml = pytest.importorskip("yaml")
        config_file.write_text(yaml.safe_dump(_dict_config(log_file)))
    else:
        _write_ini(config_file, log_file)
    spawner = Spawner()
    try:
        # The ready line goes to the file, not to stderr: don't wait for it.  The
        # test bound the listening socket (--fd), so the request below simply
        # waits in the backlog until the server accepts it.
        server = spawner.start("tests.support.process_apps:app", "--log-config", str(config_file),
                               "--access-log-format", "%(m)s %(U)s %(s)s", wait=False)
        assert httpx.get(server.url + "/configured", timeout=10).status_code == 404
        assert server.stop() == 0
    finally:
        spawner.close()
    text = log_file.read_text()
    assert "CFG carpinus.error INFO carpinus running on" in text
    assert "CFG carpinus.access INFO GET /configured 404" in text
    assert "running on" not in server.output  # our own stderr handler is not installed


def test_log_config_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = run_cli("tests.support.process_apps:app", "--log-config", str(broken))
    assert result.returncode == 2
    assert "cannot apply log_config" in result.stderr
    missing_section = tmp_path / "empty.ini"
    missing_section.write_text("")
    result = run_cli("tests.support.process_apps:app", "--log-config", str(missing_section))
    assert result.returncode == 2 and "cannot apply log_config" in result.stderr


def test_log_config_dict_from_python() -> None:
    """Config(log_config={...}) applies the dictionary itself (dictConfig)."""
    probe = logging.getLogger("tests.logging.probe")
    before = probe.level
    try:
        Config(apps.hello, log_config={
            "version": 1, "disable_existing_loggers": False,
            "loggers": {"tests.logging.probe": {"level": "DEBUG"}}})
        assert probe.level == logging.DEBUG
    finally:
        probe.setLevel(before)
    with pytest.raises(ConfigError, match="cannot apply log_config"):
        Config(apps.hello, log_config={"version": 99})
