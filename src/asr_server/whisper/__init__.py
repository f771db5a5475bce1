"""Whisper's semantics: the per-recording state machine, batched decoding with temperature fallback, VAD chunking."""
