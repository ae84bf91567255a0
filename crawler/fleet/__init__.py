"""Fleet mode (docs/scaling.md): Celery workers capture batches that run-once/schedule enqueue.

Imported only when ``[queue] broker`` is set: without a broker nothing here is loaded.
"""
