"""Scheduling: the engine loop that claims work, prepares it and decodes windows of many tasks in shared batches."""
