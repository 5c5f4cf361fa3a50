"""The parse of a finished job's output, one module per stage: source -> chunks -> decode -> keep and count -> sinks.

:mod:`.run` drives them. Nothing is imported here, so that importing an operator stays cheap.
"""
