"""``prm worker``: a Celery worker that runs the chunks of batch runs (``PRM_BATCH_BACKEND=celery``)."""

from __future__ import annotations

import os

import click


@click.command("worker")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Pool processes (default: the number of cores).",
)
@click.option("--loglevel", default="INFO", show_default=True, help="Celery's log level.")
@click.option("--hostname", default=None, help="The worker's node name (default: celery@HOST).")
def worker(concurrency: int | None, loglevel: str, hostname: str | None) -> None:
    """Run chunks of batch runs as a Celery worker (prefork: one process, rules runtime and database
    engine per slot). Broker: PRM_CELERY_BROKER_URL; queue: PRM_CELERY_QUEUE; redelivery after
    PRM_CELERY_VISIBILITY_TIMEOUT seconds when a worker dies mid-chunk."""
    from common import batch_celery  # Celery is imported by the commands that use it only

    batch_celery.start_worker(concurrency or os.cpu_count() or 1, loglevel=loglevel, hostname=hostname)


commands = [worker]
