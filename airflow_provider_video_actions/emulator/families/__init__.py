"""The emulator's model families, mirroring ``airflow_provider_video_actions.families``: one module per family."""
