"""The engine: CTranslate2's Whisper model, audio decoding, model provisioning. It knows nothing of tasks."""
