"""asr-server: a self-hosted Whisper speech-to-text service with cross-request batching."""

__version__ = "0.1.0"
