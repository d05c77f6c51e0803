"""The app's read-only JSON-RPC endpoint over an embedded py-evm chain: what it answers, and what it refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from fastapi.testclient import TestClient
from hexbytes import HexBytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from dashboard.app import create_app
from dashboard.routes import jsonrpc
from settlement.chain import Web3Clearing
from settlement.chain import rpc as chain_rpc
from settlement.chain.rpc import EmbeddedRpc
from settlement.contract import compiled
from tests.unit.test_dashboard import sample

STRANGER = "0x" + "22" * 20


class Embedded:
    """An embedded chain with the clearing contract deployed, its reader, and the app serving it."""

    def __init__(self) -> None:
        self.chain = Web3Clearing.connect(None)
        # over a token address without code: the contract's views read here never call it, and block 1 is its own
        self.contract = Web3.to_checksum_address(self.chain.deploy("0x" + "e0" * 20, 0, 0))
        self.w3 = self.chain.sender.w3
        self.account = self.chain.sender.account  # the deployer: the contract's owner
        self.reader = EmbeddedRpc(self.w3)
        self.client = TestClient(create_app(sample(), chain_reader=self.reader))
        self.deployment = HexBytes(self.w3.eth.get_block(1)["transactions"][0])  # type: ignore[arg-type]

    def rpc(self, method: str, *params: Any, request_id: Any = 1) -> dict[str, Any]:
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        response = self.client.post("/rpc", json=request)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["jsonrpc"] == "2.0" and body["id"] == request_id
        return body

    def result(self, method: str, *params: Any) -> Any:
        body = self.rpc(method, *params)
        assert "error" not in body, body
        return body["result"]

    def error(self, method: str, *params: Any) -> dict[str, Any]:
        body = self.rpc(method, *params)
        assert "result" not in body, body
        error: dict[str, Any] = body["error"]
        return error

    def encoded(self, function: str, *args: Any) -> str:
        contract = self.w3.eth.contract(address=self.contract, abi=list(compiled("clearing").abi))
        return str(contract.encode_abi(function, args=list(args)))


@pytest.fixture(scope="module")
def node() -> Iterator[Embedded]:
    yield Embedded()


def test_the_chain_is_described_in_standard_json_rpc_encoding(node: Embedded) -> None:
    chain_id = node.chain.chain_id()
    assert node.result("eth_chainId") == hex(chain_id)
    assert node.result("net_version") == str(chain_id)
    assert node.result("eth_blockNumber") == hex(node.w3.eth.block_number) == "0x1"
    assert "read-only" in node.result("web3_clientVersion")
    code = bytes(node.w3.eth.get_code(node.contract))
    assert node.result("eth_getCode", node.contract, "latest") == "0x" + code.hex() and code
    assert node.result("eth_getCode", node.contract, "0x0") == "0x"  # not yet deployed at genesis
    deployer = Web3.to_checksum_address(node.account)
    assert node.result("eth_getBalance", deployer.lower()) == hex(node.w3.eth.get_balance(deployer))


def test_a_view_is_called_and_a_revert_comes_back_with_its_reason_as_data(node: Embedded) -> None:
    root = node.result("eth_call", {"to": node.contract, "data": node.encoded("trips_root", 1)}, "latest")
    assert root == "0x" + "00" * 32
    owner = node.result("eth_call", {"to": node.contract, "input": node.encoded("owner")})
    assert int(owner, 16) == int(node.account, 16)
    reverted = node.error(
        "eth_call", {"from": node.account, "to": node.contract, "data": node.encoded("accept_ownership")}
    )
    assert reverted["code"] == 3 and reverted["message"].startswith("execution reverted")
    data = bytes.fromhex(reverted["data"][2:])
    assert data[:4] == chain_rpc.ERROR_SELECTOR
    assert abi_decode(["string"], data[4:])[0] in reverted["message"]


def test_a_transaction_its_receipt_its_block_and_its_logs_are_read_as_a_node_gives_them(node: Embedded) -> None:
    tx_hash = node.deployment.to_0x_hex()
    receipt = node.result("eth_getTransactionReceipt", tx_hash)
    assert receipt["status"] == "0x1" and receipt["blockNumber"] == "0x1"
    assert receipt["contractAddress"] == node.contract and receipt["transactionHash"] == tx_hash
    transaction = node.result("eth_getTransactionByHash", tx_hash)
    assert transaction["hash"] == tx_hash and transaction["from"] == node.account
    by_number = node.result("eth_getBlockByNumber", "0x1", False)
    assert by_number["transactions"] == [tx_hash] and by_number["number"] == "0x1"
    by_hash = node.result("eth_getBlockByHash", by_number["hash"], True)
    assert by_hash["transactions"][0]["hash"] == tx_hash
    logs = node.result("eth_getLogs", {"fromBlock": "earliest", "toBlock": "latest", "address": node.contract})
    assert logs == receipt["logs"] and logs and all(log["address"] == node.contract for log in logs)
    assert node.result("eth_getLogs", {"blockHash": by_number["hash"], "topics": [logs[0]["topics"][0]]}) == logs
    assert node.result("eth_getLogs", {"fromBlock": "0x0", "topics": [["0x" + "ab" * 32]]}) == []


def test_what_does_not_exist_is_null(node: Embedded) -> None:
    missing = "0x" + "ee" * 32
    assert node.result("eth_getTransactionReceipt", missing) is None
    assert node.result("eth_getTransactionByHash", missing) is None
    assert node.result("eth_getBlockByHash", missing, False) is None
    assert node.result("eth_getBlockByNumber", "0x99", False) is None


@pytest.mark.parametrize(
    "method",
    ["eth_sendRawTransaction", "eth_sendTransaction", "eth_sign", "eth_accounts", "personal_sign", "evm_mine",
     "anvil_setBalance", "debug_traceTransaction", "eth_subscribe", "", "x" * 500],
)  # fmt: skip
def test_every_method_that_is_not_a_read_is_not_found_and_changes_nothing(node: Embedded, method: str) -> None:
    before = node.w3.eth.block_number
    error = node.error(method, "0x02f8")
    assert error["code"] == -32601 and error["message"] == "method not found (read-only)"
    assert node.w3.eth.block_number == before


@pytest.mark.parametrize(
    ("method", "params", "says"),
    [
        ("eth_blockNumber", ["latest"], "expects 0 parameters"),
        ("eth_getBalance", ["0x1234"], "20 bytes"),
        ("eth_getBalance", [STRANGER, "0x01"], "hex quantity"),
        ("eth_getBalance", [STRANGER, "0x999"], "not on the chain yet"),
        ("eth_getBalance", [STRANGER, 7], "hex quantity"),
        ("eth_getCode", [None], "0x-prefixed hex"),
        ("eth_getBlockByNumber", ["latest", "yes"], "true or false"),
        ("eth_getBlockByNumber", [{"blockNumber": "0x1", "x": 1}], "blockNumber or blockHash"),
        ("eth_getTransactionReceipt", ["0x1234"], "32 bytes"),
        ("eth_call", [{"data": "0x6000"}], "needs a to address"),
        ("eth_call", ["0x00"], "must be an object"),
        ("eth_call", [{"to": "0x" + "00" * 19 + "09", "data": "0x" + "ff" * 213}], "precompiles are not offered"),
        ("eth_call", [{"to": STRANGER, "data": "0x123"}], "hex bytes"),
        ("eth_getLogs", [{"fromBlock": "0x0", "junk": 1}], "unknown filter field"),
        ("eth_getLogs", [{"blockHash": "0x" + "00" * 32, "fromBlock": "0x0"}], "excludes"),
        ("eth_getLogs", [{"topics": [None] * 5}], "at most 4"),
        ("eth_getLogs", [[]], "must be an object"),
    ],
)
def test_wrong_params_are_invalid_params_with_the_reason(
    node: Embedded, method: str, params: list[Any], says: str
) -> None:
    error = node.error(method, *params)
    assert error["code"] == -32602 and says in error["message"], error


def test_named_params_and_a_calls_unfunded_sender_are_refused_with_a_reason(node: Embedded) -> None:
    body = node.client.post("/rpc", json={"jsonrpc": "2.0", "id": 3, "method": "eth_chainId", "params": {}}).json()
    assert body["error"]["code"] == -32602
    error = node.error("eth_call", {"from": STRANGER, "to": node.contract, "data": node.encoded("owner")})
    assert error["code"] == -32000 and "insufficient funds" in error["message"]


def test_an_eth_call_gets_no_more_gas_than_the_cap(node: Embedded) -> None:
    call = chain_rpc.call_object({"to": node.contract, "gas": hex(10**12)})
    assert call["gas"] == chain_rpc.CALL_GAS
    assert node.result("eth_call", {"to": node.contract, "gas": hex(10**12), "data": node.encoded("last_epoch")})


def test_a_log_query_over_too_many_blocks_is_refused(node: Embedded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain_rpc, "MAX_LOG_BLOCKS", 1)
    error = node.error("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
    assert error["code"] == -32602 and "at most 1 per request" in error["message"]
    assert node.result("eth_getLogs", {"fromBlock": "0x1", "toBlock": "0x1"})


@pytest.mark.parametrize(
    ("body", "code", "answered_id"),
    [
        (b"{not json", -32700, None),
        (b"", -32700, None),
        (b"[" * 100_000, -32700, None),
        (b'["unterminated', -32700, None),
        (b"42", -32600, None),
        (b"[]", -32600, None),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"}', -32600, 1),
        (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "eth_chainId"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": true, "method": "eth_chainId"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 5}', -32600, 1),
        (b'{"jsonrpc": "2.0", "id": NaN, "method": "eth_chainId"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": "0x1"}', -32602, 7),
    ],
)
def test_hostile_bodies_get_one_json_rpc_error_and_never_a_500(
    node: Embedded, body: bytes, code: int, answered_id: int | None
) -> None:
    response = node.client.post("/rpc", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["error"]["code"] == code and answer["id"] == answered_id


def test_deep_nesting_is_refused_before_parsing_and_brackets_in_strings_do_not_count(node: Embedded) -> None:
    # py-evm raises Python's recursion limit to 100,000: a deeply nested body parsed in a worker thread would
    # overflow its C stack and kill the whole process
    deep = ("[" * 5000 + "]" * 5000).encode()
    answer = node.client.post("/rpc", content=deep).json()
    assert answer["error"]["code"] == -32700 and "nested deeper" in answer["error"]["message"]
    bracketed = {"jsonrpc": "2.0", "id": "[[[[{{{{" * 10, "method": "eth_chainId"}
    assert jsonrpc.nesting(json.dumps(bracketed).encode()) == 1
    assert node.client.post("/rpc", json=bracketed).json()["result"] == hex(node.chain.chain_id())


def test_a_batch_is_answered_in_order_without_its_notifications_and_a_huge_one_is_refused(node: Embedded) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # a notification: no answer
        {"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction", "params": ["0x00"]},
        "junk",
        {"jsonrpc": "2.0", "id": 3.5, "method": "eth_blockNumber"},
    ]
    answers = node.client.post("/rpc", json=batch).json()
    assert [a["id"] for a in answers] == ["a", 2, None, 3.5]
    assert answers[0]["result"] == hex(node.chain.chain_id()) and answers[3]["result"] == "0x1"
    assert [a["error"]["code"] for a in answers[1:3]] == [-32601, -32600]
    only_notifications = node.client.post("/rpc", json=[{"jsonrpc": "2.0", "method": "eth_chainId"}])
    assert only_notifications.status_code == 204 and only_notifications.content == b""
    huge = [{"jsonrpc": "2.0", "id": n, "method": "eth_chainId"} for n in range(jsonrpc.MAX_BATCH + 1)]
    refused = node.client.post("/rpc", json=huge).json()
    assert refused["error"]["code"] == -32600 and f"at most {jsonrpc.MAX_BATCH}" in refused["error"]["message"]


def test_a_body_above_the_limit_is_refused_before_it_is_parsed(node: Embedded) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "pad": "x" * jsonrpc.MAX_BODY_BYTES})
    response = node.client.post("/rpc", content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == -32600


def test_a_batch_whose_answer_grows_too_large_gets_limit_errors(
    node: Embedded, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = [{"jsonrpc": "2.0", "id": n, "method": "eth_getBlockByNumber", "params": ["0x1", True]} for n in range(4)]
    one = len(node.client.post("/rpc", json=batch[0]).content)
    monkeypatch.setattr(jsonrpc, "MAX_ANSWER_BYTES", 2 * one + 10)
    answers = node.client.post("/rpc", json=batch).json()
    assert ["result" in a for a in answers] == [True, True, False, False]
    assert [a["error"]["code"] for a in answers[2:]] == [-32005, -32005] and answers[3]["id"] == 3


def test_a_browser_on_any_origin_may_read_it_without_credentials(node: Embedded) -> None:
    preflight = node.client.options(
        "/rpc",
        headers={
            "Origin": "https://wallet.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type"
    assert "access-control-allow-credentials" not in preflight.headers
    posted = node.client.post(
        "/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, headers={"Origin": "https://x.example"}
    )
    assert posted.headers["access-control-allow-origin"] == "*"
    described = node.client.get("/rpc")
    assert described.headers["access-control-allow-origin"] == "*"
    assert "eth_call" in described.json()["methods"] and described.json()["read_only"] is True


def test_without_an_embedded_chain_there_is_no_rpc_route() -> None:
    client = TestClient(create_app(sample()))
    assert client.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).status_code in (404, 405)


class BrokenReader:
    methods = frozenset({"eth_chainId"})

    def request(self, method: str, params: list[Any]) -> Any:
        raise RuntimeError("the reader broke")


def test_an_unexpected_failure_of_the_reader_is_an_internal_error_not_a_500(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(create_app(sample(), chain_reader=BrokenReader()), raise_server_exceptions=False)
    response = client.post("/rpc", json={"jsonrpc": "2.0", "id": 9, "method": "eth_chainId"})
    assert response.status_code == 200
    assert response.json()["error"] == {"code": -32603, "message": "internal error; it has been logged"}
    assert "the reader broke" in caplog.text


LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
JSON = st.recursive(
    LEAVES | st.sampled_from(["latest", "earliest", "0x0", "0x1", "0x" + "ab" * 20, "0x" + "cd" * 32]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


READS = ["eth_call", "eth_getLogs", "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getBalance", "eth_getCode",
         "eth_getTransactionReceipt", "eth_getTransactionByHash", "eth_getTransactionCount", "eth_chainId"]  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(READS), params=st.lists(JSON, max_size=3))
def test_any_params_get_a_result_or_a_client_error_never_an_internal_one(
    node: Embedded, method: str, params: list[Any]
) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    status, body = jsonrpc.answer(node.reader, json.dumps(request).encode())
    answer = json.loads(body)
    assert status == 200 and answer["id"] == 1
    assert "result" in answer or answer["error"]["code"] in (-32602, -32000, 3), answer
