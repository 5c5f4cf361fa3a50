"""Tests of the built-in Vertex AI / GCS emulator."""
