"""The error that ends an emulated RPC with a gRPC status, and handlers that turn it into one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class AbortError(Exception):
    """Ends an RPC with a gRPC status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        """Keep the status to send."""
        super().__init__(message)
        self.code = code
        self.message = message


def unary_handlers(service: str, methods: dict[str, tuple[Callable[[Any], Any], Any, Any]]) -> grpc.GenericRpcHandler:
    """A service's handler from ``method -> (fn(request), request type, response type)`` (protobuf classes).

    An :class:`AbortError` a method raises becomes the call's gRPC status.
    """

    def aborting(fn: Callable[[Any], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return fn(request)
            except AbortError as exc:
                context.abort(exc.code, exc.message)

        return handle

    return grpc.method_handlers_generic_handler(
        service,
        {
            method: grpc.unary_unary_rpc_method_handler(
                aborting(fn),
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
            for method, (fn, request_type, response_type) in methods.items()
        },
    )
