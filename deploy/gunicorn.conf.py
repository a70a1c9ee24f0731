"""gunicorn for 晨读: `gunicorn -c deploy/gunicorn.conf.py "app:create_app()"`.

gthread workers: one process per core keeps memory flat, threads ride out the slow phone
networks (a worker thread waits on a socket while others run). Sized from the machine."""

import gc
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# WeChat's callback must answer within 5 s; nothing of ours takes longer than this.
timeout = 30
graceful_timeout = 20
keepalive = 5
# The app is loaded once, in the master, and each worker is a fork of it: a worker starts in
# milliseconds, not the 2-3 s of CPU that importing the site and jieba's dictionary take
# (on a 2-core machine under load, recycled workers that each loaded the site on their own
# ate a large share of the CPU), and the workers share that memory. A new release of the
# code therefore needs `systemctl restart chendu`; `reload` (HUP) only forks new workers
# from the same master.
preload_app = True
# Recycle workers now and then (a leak cannot grow without bound), with jitter so they do
# not restart together.
max_requests = 20000
max_requests_jitter = 2000


def pre_fork(server, worker):
    """Move everything the master has loaded (the site, jieba's dictionary) out of the cyclic
    garbage collector's reach before forking: a collection in a worker would otherwise write
    to every object it walks, and each page it writes to stops being shared with the master.
    Soaks measured the workers' memory growing by half again under load without this."""
    gc.freeze()


def post_fork(server, worker):
    """A worker must not share the master's database connections: drop any it inherited
    (without closing them under the master), so that each worker opens its own."""
    from app import db

    app = server.app.wsgi()
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)


# nginx in front sets X-Forwarded-*; the app trusts it through TRUSTED_PROXIES.
forwarded_allow_ips = "127.0.0.1"
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
