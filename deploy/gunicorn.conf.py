"""gunicorn for 晨读: `gunicorn -c deploy/gunicorn.conf.py "app:create_app()"`.

gthread workers: one process per core keeps memory flat, threads ride out the slow phone
networks (a worker thread waits on a socket while others run). Sized from the machine."""

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
# Recycle workers now and then, with jitter so they do not restart together.
max_requests = 5000
max_requests_jitter = 500
# nginx in front sets X-Forwarded-*; the app trusts it through TRUSTED_PROXIES.
forwarded_allow_ips = "127.0.0.1"
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
