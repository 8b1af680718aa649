"""Property-based API tests from the API's own OpenAPI spec: no input, valid or not, ever yields
a 5xx. Driven through schemathesis' Python API (bounded examples, no deadline)."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from homevision.serving.api import create_app


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_yields_a_server_error(served_home, mode):
    app = create_app()
    with TestClient(app):  # runs the start-up that loads the model
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert any(op.path == "/valuations" for op in operations)
        for operation in operations:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=15,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                case.call_and_validate(checks=[not_a_server_error])

            try:
                check()
            except Unsatisfiable:
                # /health, /model and /model/reload take no input: no invalid request exists.
                assert mode == GenerationMode.NEGATIVE and operation.path != "/valuations"
