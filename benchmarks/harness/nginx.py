"""The nginx ceiling: its own configuration, in the server's work directory.

One process (`master_process off`), in the foreground, listening on the
benchmark host only; pid, logs and temp files stay in the work directory, so
nothing of the system's nginx set-up is read or written.  Every request gets
the demo app's "Hello, World!" without touching an app.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_NAME = "nginx.conf"

TEMPLATE = """\
worker_processes 1;
daemon off;
master_process off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    # The Python servers keep a connection for the whole run; nginx's default
    # of 1000 requests per connection would make it reconnect instead.
    keepalive_requests 100000000;
    # upload1m sends exactly 1 MiB, nginx's default limit: leave room.
    client_max_body_size 2m;

    server {{
        listen {host}:{port};
        location / {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
    }}
}}
"""


def write_config(workdir: Path, host: str, port: int) -> None:
    """Write nginx.conf for one server start into `workdir`."""
    text = TEMPLATE.format(workdir=workdir, host=host, port=port)
    (workdir / CONFIG_NAME).write_text(text)
