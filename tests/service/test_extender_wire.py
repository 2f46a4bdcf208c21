"""The extender wire format against golden files: upstream's own test literals (byte for byte)
and bodies captured from a real kube-scheduler (tests/fixtures/k8s-extender/PROVENANCE.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.hooks.extender_wire import WireError, filter_result, host_priorities, parse_args, raw_filter_result

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "k8s-extender"


def _fixture(name: str) -> bytes:
    """The file's bytes without the final newline the files add to the Go literal."""
    return (FIXTURES / name).read_bytes().removesuffix(b"\n")


def test_the_upstream_extender_args_literal_is_read_and_its_node_kept_byte_for_byte() -> None:
    body = _fixture("ExtenderArgs.upstream-test.json")
    args = parse_args(body)
    assert args.pod["metadata"]["name"] == "podname" and not args.by_name
    (node,) = args.nodes
    assert node.name == "nodename" and node.raw is not None
    item = json.dumps(json.loads(body)["Nodes"]["items"][0], separators=(",", ":"))
    assert node.raw == item


def test_the_filter_result_is_the_upstream_literal_byte_for_byte() -> None:
    node = parse_args(_fixture("ExtenderArgs.upstream-test.json")).nodes[0]
    ours = raw_filter_result(
        '{"metadata":{},"items":[' + (node.raw or "") + "]}", ["node1"], {"foo": "bar"}, {"baz": "qux"}, "myerror"
    )
    assert ours == _fixture("ExtenderFilterResult.upstream-test.json")


def test_host_priorities_are_the_upstream_literal_in_a_bare_list() -> None:
    assert host_priorities([("myhost", 1)]) == b"[" + _fixture("HostPriority.upstream-test.json") + b"]"
    assert host_priorities([]) == b"[]"


def test_a_by_name_request_is_answered_by_name() -> None:
    args = parse_args(_fixture("ExtenderArgs.filter.nodeCacheCapable.kubernetes-md.json"))
    assert args.by_name and [n.name for n in args.nodes] == ["node-a", "node-b", "node-c"]
    assert args.pod["metadata"]["uid"] == "e909c853-4999-45cc-b432-bc70031e88ab"
    answer = json.loads(filter_result(args.nodes[:2], {"node-c": "no"}, by_name=True))
    assert answer == {
        "Nodes": None,
        "NodeNames": ["node-a", "node-b"],
        "FailedNodes": {"node-c": "no"},
        "FailedAndUnresolvableNodes": {},
        "Error": "",
    }


def test_a_real_full_body_with_managed_fields_is_echoed_exactly() -> None:
    body = _fixture("ExtenderArgs.filter.kube-scheduler-1.20.2.json")
    args = parse_args(body)
    sent = json.loads(body)
    assert sent["NodeNames"] is None and len(args.nodes) == len(sent["Nodes"]["items"]) >= 2
    assert all("managedFields" in item["metadata"] for item in sent["Nodes"]["items"])
    virtual = [n for n in args.nodes if n.operating_system == "virtual-kubelet"]
    assert virtual and all(n.taints for n in virtual)
    answer = json.loads(filter_result(args.nodes, {}, by_name=False))
    assert answer["Nodes"]["items"] == sent["Nodes"]["items"]
    assert answer["NodeNames"] == [n.name for n in args.nodes]


def test_any_key_case_is_accepted_as_go_accepts_it() -> None:
    item = _fixture("Node.item.kubernetes-md.json").decode()
    body = '{ "pod" : {"metadata": {"name": "p"}}, "NODES": {"ITEMS": [ ' + item + ' ]}, "nodeNames": null }'
    args = parse_args(body.encode())
    assert [n.name for n in args.nodes] == ["node-c"] and args.nodes[0].labels["spike/fake"] == "true"
    assert args.nodes[0].raw == item


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "not JSON"),
        (b"{nope", "not JSON"),
        (b'{"Pod": {}, "NodeNames": []} x', "after its JSON"),
        (b'{"NodeNames": ["a"]}', "Pod is missing"),
        (b'{"Pod": {}, "Nodes": null, "NodeNames": null}', "neither"),
        (b'{"Pod": {}, "Nodes": [1]}', "NodeList"),
        (b'{"Pod": {}, "Nodes": {"items": [1]}}', "not an object"),
        (b'{"Pod": {}, "Nodes": {"items": [{"metadata": {}}]}}', "no metadata.name"),
        (b'{"Pod": {}, "NodeNames": [1]}', "list of strings"),
        (b'{"Pod": {}, "NodeNames": ["\xff"]}', "not UTF-8"),
        (b'{"Pod": ' + b"[" * 100_000 + b"]" * 100_000 + b', "NodeNames": []}', "not JSON"),
    ],
)
def test_garbage_is_refused_with_the_reason(body: bytes, says: str) -> None:
    with pytest.raises(WireError, match=says):
        parse_args(body)
