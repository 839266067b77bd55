"""gunicorn settings for every mashlab server (the demo, production, the tests): one place, one worker class.

    gunicorn -c python:config.gunicorn_conf config.wsgi -b 127.0.0.1:8000

Threaded workers (``gthread``): a connection that sends nothing holds a
thread for at most gunicorn's data timeout (5 s) and is then parked in the
worker's poller, so idle or slow clients cannot take every worker as they do
under the ``sync`` class (2 idle connections stopped a 2-worker sync server).
Within those 5 s a worker answers others only while it has a free thread, and
the kernel may hand every new connection to the same worker, so the threads
of one worker bound the idle connections tolerated: with the defaults, 2
workers x 64 threads, 50 idle connections leave the site answering
(tests/test_config_gunicorn.py; with 32 threads the first probe could wait
out the 5 s). Not gevent: the analysis
page computes for seconds on the CPU, which would stall every other client of
a gevent worker.

Environment: ``GUNICORN_WORKERS`` (processes, default 2), ``GUNICORN_THREADS``
(threads per worker, default 64), ``GUNICORN_TIMEOUT`` (s a request may run
before its worker is restarted, default 120). Command-line flags given after
``-c`` still override these.
"""

from __future__ import annotations

from config.env import env_int

worker_class = "gthread"
workers = env_int("GUNICORN_WORKERS", 2)
threads = env_int("GUNICORN_THREADS", 64)
timeout = env_int("GUNICORN_TIMEOUT", 120)
keepalive = 5  # s an idle kept-alive connection stays open; it waits in the poller, not in a thread
worker_connections = 1000  # open connections per worker, idle ones included
backlog = 2048
# gunicorn 25+ opens a control socket at one fixed path per user ($HOME/.gunicorn/gunicorn.ctl), which a
# second instance on the same machine (tests, benchmarks, a second study server) would fight over.
control_socket_disable = True


def post_worker_init(worker) -> None:
    """Import every URL's view before the worker takes connections.

    Django imports views on the first request; the analysis views bring
    SciPy, pandas and plotly (3-6 s on 2 shared cores), which would make some
    participant's first request wait that long. A worker that is still
    warming takes no connections, the warm ones serve meanwhile.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports config.urls and, through include(), every app's views
