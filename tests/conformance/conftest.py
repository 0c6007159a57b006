# Stand-in for llama.cpp's tools/server/tests/conftest.py, used to run its router tests against
# Switchyard. Identical, except that the session fixture does not download models: the test runner
# (tests/e2e/conformance_test.ts) has already placed tiny models in LLAMA_CACHE under the ids the
# tests use, and this machine cannot reach the Hugging Face Hub.
import os
import pytest
from utils import *


@pytest.fixture(scope="session", autouse=True)
def configure_worker_port(request):
    worker_id = getattr(request.config, "workerinput", {}).get("workerid", "master")
    if worker_id != "master":
        worker_num = int(worker_id[2:])
        os.environ["PORT"] = str(8080 + worker_num * 10)


@pytest.fixture(autouse=True)
def stop_server_after_each_test():
    yield
    instances = set(server_instances)
    for server in instances:
        server.stop()
