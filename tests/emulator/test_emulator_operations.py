"""google.longrunning.Operations on the emulator: the operation a delete returns, read back with the real client."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from tests.emulator.conftest import PARENT
from tests.emulator.test_emulator_jobs import Submit, WaitFor


def test_delete_operation_is_readable_until_deleted(
    job_client: aiplatform_v1.JobServiceClient, submit: Submit, wait_for: WaitFor
) -> None:
    """get_operation answers the delete's operation: done, Empty response; list, wait, cancel and delete work too."""
    job = submit([])
    wait_for(job.name)
    deleting = job_client.delete_batch_prediction_job(name=job.name)
    assert deleting.result(timeout=30) == empty_pb2.Empty()
    name = deleting.operation.name

    operation = job_client.get_operation(request={"name": name})
    assert (operation.name, operation.done, operation.HasField("error")) == (name, True, False)
    assert operation.response.Is(empty_pb2.Empty.DESCRIPTOR)
    # aiplatform 2.7's transport declares no response deserializer for WaitOperation: the client hands back bytes.
    waited = job_client.wait_operation(request={"name": name, "timeout": {"seconds": 5}})
    assert operations_pb2.Operation.FromString(waited).done
    job_client.cancel_operation(request={"name": name})
    listed = job_client.list_operations(request={"name": job.name})
    assert [op.name for op in listed.operations] == [name]

    job_client.delete_operation(request={"name": name})
    with pytest.raises(exceptions.NotFound, match=name):
        job_client.get_operation(request={"name": name})
    with pytest.raises(exceptions.NotFound):
        job_client.cancel_operation(request={"name": f"{PARENT}/operations/1"})


def test_list_operations_pages(job_client: aiplatform_v1.JobServiceClient, submit: Submit, wait_for: WaitFor) -> None:
    """ListOperations under the location pages through the deletes' operations."""
    names = []
    for _ in range(3):
        job = wait_for(submit([]).name)
        names.append(job_client.delete_batch_prediction_job(name=job.name).operation.name)
    first = job_client.list_operations(request={"name": PARENT, "page_size": 2})
    second = job_client.list_operations(request={"name": PARENT, "page_size": 2, "page_token": first.next_page_token})
    assert [op.name for op in [*first.operations, *second.operations]] == names
    assert not second.next_page_token
    assert isinstance(first, operations_pb2.ListOperationsResponse)
