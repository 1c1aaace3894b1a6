"""Fault tests run on the sandbox like the e2e tests, with the same fixtures."""

from tests.e2e.conftest import namespace, sandbox  # noqa: F401
from tests.e2e.operator_fixture import operator_fixture  # noqa: F401
