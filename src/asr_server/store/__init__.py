"""The task stores: durable records and the queue of pending work (SQLite embedded, Redis shared by replicas)."""
