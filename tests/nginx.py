"""A real nginx with the sample configuration (deploy/nginx.conf) in front of app servers."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SAMPLE_UPSTREAM = "    server 127.0.0.1:5000;          # one line per instance\n"


@contextmanager
def running_nginx(app_ports: list[int], prefix: Path):
    """nginx on a free port, proxying to the app servers on ``app_ports``; yields its URL."""
    if not os.path.exists(NGINX):
        pytest.fail("nginx is not installed: run the README's test command, which installs it.")
    # We bind the listening socket and hand it to nginx (its NGINX variable, the mechanism of
    # its binary upgrade): connections wait in the backlog until nginx is up, so no test has
    # to poll for it.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    sample = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = "".join(f"    server 127.0.0.1:{app_port};\n" for app_port in app_ports)
    site = sample.replace(SAMPLE_UPSTREAM, servers).replace("listen 80;",
                                                             f"listen 127.0.0.1:{port};")
    assert SAMPLE_UPSTREAM in sample and "listen 80;" in sample
    (prefix / "site.conf").write_text(site)
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temp folders
    (prefix / "nginx.conf").write_text(f"""
{user}
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
""")
    subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                   check=True, capture_output=True)
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                               pass_fds=(listener.fileno(),),
                               env={**os.environ, "NGINX": f"{listener.fileno()};"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        listener.close()
