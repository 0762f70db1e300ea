"""openapi.yaml is the contract: it equals the app's schema, and schemathesis finds no 5xx or schema drift."""
import json
import tempfile
from pathlib import Path

import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks

from service.app import create_app
from service.config import ServiceSettings
from service.openapi_dump import DEFAULT_PATH, current_schema
from tests.service_support import FakeJobs, FakeRegistry, build_tiny_model


def test_openapi_yaml_matches_the_app():
    on_disk = yaml.safe_load(DEFAULT_PATH.read_text())
    assert on_disk == json.loads(json.dumps(current_schema())), \
        "openapi.yaml is stale: run `python -m service.openapi_dump` and review the diff"


class AnyDatasetRegistry(FakeRegistry):
    """Serves the tiny model for every dataset name, so generated names exercise /align instead of 503."""

    def champion(self, dataset):
        served = super().champion("300w")
        return {**served, "dataset": dataset, "name": f"sdhrnet-{dataset}"}


_model = build_tiny_model(Path(tempfile.mkdtemp(prefix="sdhrnet-contract-")) / "m")
_app = create_app(ServiceSettings(model_poll_seconds=0, preload_datasets="", batch_wait_ms=0),
                  registry=AnyDatasetRegistry({"300w": [_model]}), jobs=FakeJobs(), api_keys=frozenset({"k"}))
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)


@schema.parametrize()
@settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    # generated strings are never real images: a valid-by-schema body may rightly be refused with 4xx
    case.call_and_validate(headers={"X-API-Key": "k"}, excluded_checks=[checks.positive_data_acceptance])
