"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.nodes import ANVIL_KEYS, EMBEDDED, Node


@pytest.fixture(
    params=[
        pytest.param("py-evm", id="py-evm"),
        pytest.param("anvil", id="anvil", marks=pytest.mark.services),
    ]
)
def node(request: pytest.FixtureRequest) -> Node:
    if request.param == "py-evm":
        return EMBEDDED
    return Node(request.getfixturevalue("anvil_url"), *ANVIL_KEYS)
