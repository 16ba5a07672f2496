"""The example's Celery tasks; the broker and the results are in Redis."""

import os

from celery import Celery

REDIS = "redis://127.0.0.1:%s/0" % os.environ["WEBAPP_REDIS_PORT"]

celery = Celery("tasks", broker=REDIS, backend=REDIS)
celery.conf.broker_connection_retry_on_startup = True


@celery.task
def add(x, y):
    return x + y
