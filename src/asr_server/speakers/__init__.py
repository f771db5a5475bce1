"""Speaker labels: who spoke when (diarization), below the service and beside the whisper layer."""
