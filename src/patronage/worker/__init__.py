"""The worker: the task queue (huey), the scheduled jobs per store, the after-orders rescoring."""
