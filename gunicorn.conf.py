"""gunicorn settings for StreamDesk; the Procfile and ``python app.py`` both use this file.

Why gevent: every open reply is a long-lived request that mostly waits on an upstream socket.
The default sync worker serves one request at a time and kills it after ``timeout``; gthread
caps concurrency at workers x threads. A gevent worker holds thousands of waiting streams.

gevent must monkey-patch sockets and ssl before ``requests`` is imported. gunicorn's gevent
worker patches in each worker before it imports ``app`` -- so never set ``preload_app``, which
would import the app (and requests) in the master first.
"""
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))

# With gevent, ``timeout`` is how long a worker may block its event loop, not a cap on a
# request: a reply streaming for an hour is never cut by it.
timeout = 30
# On SIGTERM a worker stops accepting and lets running replies finish for this long.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
keepalive = 5
preload_app = False

accesslog = "-"
errorlog = "-"
# gunicorn's control socket lives at one fixed path per user, which two instances on one
# machine would fight over; StreamDesk does not use it.
control_socket_disable = True
