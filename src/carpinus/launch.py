"""Pick the process model a Config asks for, and run it.

- one server in this process (the default: `--workers 1`, no `--reload`),
  with no supervisor in between: nothing costs more than before;
- a supervisor with worker processes (`--workers N`, N > 1, or `--reload`),
  see carpinus.supervisor.

`--pid PATH` names whichever process is the one to signal: the server in the
first case, the supervisor in the second.
"""

from __future__ import annotations

import contextlib
import logging

from carpinus.config import Config, ConfigError
from carpinus.pidfile import PidFileError, pid_file

logger = logging.getLogger("carpinus.error")


def launch(config: Config) -> int:
    """Serve until told to stop; returns the process exit code."""
    try:
        with contextlib.ExitStack() as stack:
            if config.pid_file is not None:
                stack.enter_context(pid_file(config.pid_file))
            if config.uses_supervisor:
                return supervise(config)
            from carpinus.server import Server

            return Server(config).run()
    except (PidFileError, ConfigError) as exc:
        logger.error("%s", exc)
        return 1


def supervise(config: Config) -> int:
    """Bind the sockets once, then run the supervisor over worker processes."""
    from carpinus.listen import bind_sockets, close_sockets
    from carpinus.reload import FileWatcher
    from carpinus.server import log_listening
    from carpinus.supervisor import Supervisor

    watcher = FileWatcher.from_config(config) if config.reload else None
    try:
        sockets = bind_sockets(config)
    except OSError as exc:
        logger.error("%s", exc)
        return 1
    try:
        for sock in sockets:
            log_listening(sock, tls=config.is_ssl)
        return Supervisor(config, sockets, watcher).run()
    finally:
        close_sockets(config, sockets)
