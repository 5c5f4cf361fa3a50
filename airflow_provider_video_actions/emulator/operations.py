"""``google.longrunning.Operations`` on the emulator's gRPC port: the operations its deletes return.

The aiplatform clients reach it on the job service's channel (``client.get_operation``, and the operation
future of ``delete_batch_prediction_job``). Every operation the emulator makes is done when returned (a
delete happens at once), so Wait and Cancel answer at once too.
"""

from __future__ import annotations

import threading

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from airflow_provider_video_actions.emulator.errors import AbortError, unary_handlers

SERVICE_NAME = "google.longrunning.Operations"
_DEFAULT_PAGE_SIZE = 100


class OperationStore:
    """The emulator's long-running operations by name, served as ``google.longrunning.Operations``."""

    def __init__(self) -> None:
        """No operations yet."""
        self._lock = threading.Lock()
        self._operations: dict[str, operations_pb2.Operation] = {}

    def add(self, operation: operations_pb2.Operation) -> operations_pb2.Operation:
        """Keep an operation (as returned to the caller) and return it."""
        with self._lock:
            self._operations[operation.name] = operation
        return operation

    def get(self, request: operations_pb2.GetOperationRequest) -> operations_pb2.Operation:
        """The operation by name, or NOT_FOUND."""
        with self._lock:
            if request.name not in self._operations:
                raise AbortError(grpc.StatusCode.NOT_FOUND, f"Operation {request.name} not found")
            return self._operations[request.name]

    def wait(self, request: operations_pb2.WaitOperationRequest) -> operations_pb2.Operation:
        """The operation (already done), or NOT_FOUND."""
        return self.get(operations_pb2.GetOperationRequest(name=request.name))

    def cancel(self, request: operations_pb2.CancelOperationRequest) -> empty_pb2.Empty:
        """Nothing to cancel (every operation is done); NOT_FOUND for an unknown one."""
        self.get(operations_pb2.GetOperationRequest(name=request.name))
        return empty_pb2.Empty()

    def delete(self, request: operations_pb2.DeleteOperationRequest) -> empty_pb2.Empty:
        """Forget the operation; NOT_FOUND for an unknown one."""
        self.get(operations_pb2.GetOperationRequest(name=request.name))
        with self._lock:
            del self._operations[request.name]
        return empty_pb2.Empty()

    def list(self, request: operations_pb2.ListOperationsRequest) -> operations_pb2.ListOperationsResponse:
        """Operations named under ``request.name``, a page at a time (tokens are offsets)."""
        if request.page_size < 0 or (request.page_token and not request.page_token.isdigit()):
            raise AbortError(grpc.StatusCode.INVALID_ARGUMENT, "page_size must be >= 0 and page_token one we gave")
        with self._lock:
            under = [op for name, op in self._operations.items() if name.startswith(f"{request.name}/")]
        start, size = int(request.page_token or 0), request.page_size or _DEFAULT_PAGE_SIZE
        more = start + size < len(under)
        return operations_pb2.ListOperationsResponse(
            operations=under[start : start + size], next_page_token=str(start + size) if more else ""
        )

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The handler to register on the emulator's gRPC server."""
        methods = {
            "GetOperation": (self.get, operations_pb2.GetOperationRequest, operations_pb2.Operation),
            "WaitOperation": (self.wait, operations_pb2.WaitOperationRequest, operations_pb2.Operation),
            "CancelOperation": (self.cancel, operations_pb2.CancelOperationRequest, empty_pb2.Empty),
            "DeleteOperation": (self.delete, operations_pb2.DeleteOperationRequest, empty_pb2.Empty),
            "ListOperations": (self.list, operations_pb2.ListOperationsRequest, operations_pb2.ListOperationsResponse),
        }
        return unary_handlers(SERVICE_NAME, methods)
