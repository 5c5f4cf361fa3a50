"""The error that ends an emulated RPC with a gRPC status."""

from __future__ import annotations

import grpc


class AbortError(Exception):
    """Ends an RPC with a gRPC status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        """Keep the status to send."""
        super().__init__(message)
        self.code = code
        self.message = message
