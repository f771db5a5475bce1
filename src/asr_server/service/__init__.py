"""The service layer: one path for creating, reading, listing and deleting tasks, and what
follows a task's end (webhooks, metrics, waiters)."""
