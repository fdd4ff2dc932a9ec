"""What we send and accept must be what Kazoo itself sends and accepts, judged by Kazoo's own schemas.

(a) our bus examples against Kazoo's ``kapi.*`` schemas; (b) each of our callflow module schemas
against Kazoo's ``callflows.<module>``, rule by rule; (c) flows that pass ``validate_flow`` pass
Kazoo's schemas, with the same defaults filled in, including on generated input.

Deliberate differences, each checked below rather than skipped:

* ``required`` properties that have a default (``response.code``, ``record_call.action``,
  ``set_variables.custom_application_vars``, ``branch_variable.variable``) are optional in our
  schemas: Kazoo's validator inserts defaults before it checks ``required``, so they can never be
  missing there, while fastjsonschema checks ``required`` first.
* A default Kazoo would not insert is absent from ours (``send_dtmf.duration_ms`` has no ``type``,
  and Kazoo inserts only typed defaults). Object defaults are stored expanded
  (``conference.config.member``), because Kazoo fills the nested defaults of an inserted object and
  fastjsonschema does not.
* ``format: uri`` is not in our schemas: Kazoo's validator does not check that format, and
  fastjsonschema would.
* Integer-valued numbers such as ``5.0`` count as integers for us (draft-07) but not for Kazoo
  (draft-04). Kazoo's modules read such values as integers anyway; generated input below avoids
  them, and ``test_integer_valued_float_is_the_one_known_leniency`` pins the behaviour.
* Modules we do not support (Kazoo has ~80) are ``unknown_module`` for us.
"""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pivot_worker.callflow import SUPPORTED_MODULES, validate_flow
from pivot_worker.callflow.modules import data_schema
from pivot_worker.errors import TranslationError
from tests.conformance.flow_examples import MODULE_EXAMPLES, menu_flow, single_node
from tests.kazoo_conformance import (
    assert_conforms,
    assert_flow_conforms,
    flow_errors,
    kazoo_errors,
    kazoo_filled_flow,
    kazoo_inserted_default,
    kazoo_resolve,
    kazoo_schema,
    kazoo_schemas_dir,
)

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "amqp_schemas" / "examples" / "valid"
KAZOO_MESSAGE_SCHEMA = {
    "pivot_req": "kapi.pivot.req",
    "pivot_processing": "kapi.pivot.processing",
    "pivot_failed": "kapi.pivot.failed",
    "channel_pivot": "kapi.call.event",
}
COMPARED_RULES = (
    "type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "uniqueItems", "additionalProperties",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _kazoo_schemas_present() -> None:
    kazoo_schemas_dir()


def _examples(ours: str) -> list[pathlib.Path]:
    return sorted((EXAMPLES / ours).glob("*.json"))


# --- (a) bus messages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [p for name in KAZOO_MESSAGE_SCHEMA for p in _examples(name)],
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_valid_examples_pass_kazoos_message_schema(path: pathlib.Path) -> None:
    """Debug as a string: Kazoo's runtime check (kz_term:is_boolean) accepts true/false and
    "true"/"false", but each generated schema keeps only half of that: ``kapi.pivot.req`` types
    Debug as boolean, ``kapi.pivot.pivot_req`` as string. We accept both, like the runtime, so an
    example with a string Debug must pass ``kapi.pivot.req`` except on /Debug and pass
    ``kapi.pivot.pivot_req`` as a whole."""
    msg = json.loads(path.read_text(encoding="utf-8"))
    name = KAZOO_MESSAGE_SCHEMA[path.parent.name]
    if name == "kapi.pivot.req" and isinstance(msg.get("Debug"), str):
        errors = kazoo_errors(name, msg)
        assert len(errors) == 1
        assert errors[0].startswith("/Debug:")
        assert_conforms("kapi.pivot.pivot_req", msg)
    else:
        assert_conforms(name, msg)


@pytest.mark.parametrize("path", _examples("channel_pivot"), ids=lambda p: p.stem)
def test_channel_pivot_examples_carry_flows_kazoo_accepts(path: pathlib.Path) -> None:
    flow = json.loads(json.loads(path.read_text(encoding="utf-8"))["Application-Data"])
    assert_flow_conforms(flow)
    assert kazoo_filled_flow(flow) == flow, "a published flow must already carry Kazoo's defaults"


def test_our_request_rules_are_at_least_as_strict_as_kazoos_types() -> None:
    """Every key Kazoo's kapi.pivot.req types is typed the same way by us (Debug aside, see above)."""
    from pivot_worker.contracts import contract_schema

    schema = contract_schema("pivot_req")
    ours = {**schema["properties"], "Call": schema["$defs"]["call"]}
    for key, rule in kazoo_schema("kapi.pivot.req")["properties"].items():
        if key == "Debug":
            continue
        assert key in ours, key
        assert ours[key].get("type") == rule.get("type"), key
        if "enum" in rule:
            assert set(ours[key]["enum"]) <= set(rule["enum"]), key
    assert set(kazoo_schema("kapi.pivot.req")["required"]) <= set(contract_schema("pivot_req")["required"])


# --- (b) module schemas, rule by rule ------------------------------------------------------------


def _ours_resolved(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    assert ref.startswith("#/definitions/"), ref
    return {**{k: v for k, v in node.items() if k != "$ref"}, **root["definitions"][ref.rsplit("/", 1)[1]]}


def _compare(ours: dict[str, Any], kazoo: dict[str, Any], root: dict[str, Any], at: str) -> list[str]:
    ours = _ours_resolved(ours, root)
    kazoo = kazoo_resolve(kazoo)
    diffs = [
        f"{at}: {rule} ours={ours.get(rule)!r} kazoo={kazoo.get(rule)!r}"
        for rule in COMPARED_RULES
        if ours.get(rule) != kazoo.get(rule)
    ]
    if "format" in ours:
        diffs.append(f"{at}: ours declares format {ours['format']!r}, which Kazoo does not enforce")
    ours_props, kazoo_props = ours.get("properties", {}), kazoo.get("properties", {})
    if set(ours_props) != set(kazoo_props):
        diffs.append(f"{at}: properties ours-only={set(ours_props) - set(kazoo_props)} "
                     f"kazoo-only={set(kazoo_props) - set(ours_props)}")  # fmt: skip
    for name in sorted(set(ours_props) & set(kazoo_props)):
        ours_sub, kazoo_sub = ours_props[name], kazoo_props[name]
        inserted, value = kazoo_inserted_default(kazoo_sub)
        if ("default" in ours_sub) != inserted or ours_sub.get("default") != value:
            diffs.append(
                f"{at}/{name}: default ours={ours_sub.get('default', '-')!r} kazoo inserts={value!r}"
            )
        diffs += _compare(ours_sub, kazoo_sub, root, f"{at}/{name}")
    kazoo_required = {
        r for r in kazoo.get("required", []) if not kazoo_inserted_default(kazoo_props.get(r, {}))[0]
    }
    if set(ours.get("required", [])) != kazoo_required:
        diffs.append(
            f"{at}: required ours={ours.get('required')} kazoo (minus defaulted)={sorted(kazoo_required)}"
        )
    for keyword in ("items",):
        if isinstance(ours.get(keyword), dict) or isinstance(kazoo.get(keyword), dict):
            diffs += _compare(ours.get(keyword, {}), kazoo.get(keyword, {}), root, f"{at}/{keyword}")
    for keyword in ("oneOf", "anyOf"):
        ours_list, kazoo_list = ours.get(keyword, []), kazoo.get(keyword, [])
        if len(ours_list) != len(kazoo_list):
            diffs.append(f"{at}: {keyword} has {len(ours_list)} branches, Kazoo's {len(kazoo_list)}")
        for i, (a, b) in enumerate(zip(ours_list, kazoo_list, strict=False)):
            diffs += _compare(a, b, root, f"{at}/{keyword}/{i}")
    ours_pp, kazoo_pp = ours.get("patternProperties", {}), kazoo.get("patternProperties", {})
    if set(ours_pp) != set(kazoo_pp):
        diffs.append(f"{at}: patternProperties {sorted(ours_pp)} vs {sorted(kazoo_pp)}")
    for pattern in sorted(set(ours_pp) & set(kazoo_pp)):
        diffs += _compare(ours_pp[pattern], kazoo_pp[pattern], root, f"{at}/patternProperties/{pattern}")
    return diffs


@pytest.mark.parametrize("module", sorted(SUPPORTED_MODULES))
def test_module_schema_agrees_with_kazoo(module: str) -> None:
    ours = data_schema(module)
    assert _compare(ours, kazoo_schema(f"callflows.{module}"), ours, "") == []


def test_node_envelope_agrees_with_kazoo() -> None:
    from pivot_worker.callflow import validate

    module_rule = kazoo_schema("callflows.action")["properties"]["module"]
    ours = (validate.MODULE_MIN_LENGTH, validate.MODULE_MAX_LENGTH)
    assert ours == (module_rule["minLength"], module_rule["maxLength"])
    assert kazoo_inserted_default(kazoo_schema("callflows.action")["properties"]["data"]) == (True, {})


def test_the_comparison_catches_a_changed_rule() -> None:
    ours = copy.deepcopy(data_schema("tts"))
    ours["properties"]["text"]["maxLength"] = 2000
    ours["properties"]["voice"]["default"] = "male"
    ours["required"] = []
    diffs = _compare(ours, kazoo_schema("callflows.tts"), ours, "")
    assert diffs == [
        "/text: maxLength ours=2000 kazoo=1000",
        "/voice: default ours='male' kazoo inserts='female'",
        ": required ours=[] kazoo (minus defaulted)=['text']",
    ]


# --- (c) what we accept, Kazoo accepts, with the same defaults ----------------------------------------


@pytest.mark.parametrize("module", sorted(SUPPORTED_MODULES))
def test_each_module_example_is_accepted_by_kazoo_with_the_same_defaults(module: str) -> None:
    original = single_node(module)
    assert flow_errors(original) == []
    assert validate_flow(copy.deepcopy(original)) == kazoo_filled_flow(original)


def test_bare_nodes_get_the_same_defaults_as_kazoo() -> None:
    for module in sorted(SUPPORTED_MODULES):
        bare = {"module": module}
        kazoo_ok = not flow_errors(bare)
        ours, rejection = _our_verdict(bare)
        if rejection is not None:
            assert not kazoo_ok, f"{module}: Kazoo accepts a bare node, we reject it"
            continue
        assert kazoo_ok, f"{module}: we accept a bare node, Kazoo rejects it"
        assert ours == kazoo_filled_flow(bare), module


def test_menu_flow_matches_kazoo() -> None:
    flow = menu_flow()
    assert_flow_conforms(validate_flow(copy.deepcopy(flow)))
    assert validate_flow(copy.deepcopy(flow)) == kazoo_filled_flow(flow)


def test_integer_valued_float_is_the_one_known_leniency() -> None:
    flow = {"module": "sleep", "data": {"duration": 5.0}}
    validate_flow(copy.deepcopy(flow))
    assert flow_errors(flow) != []


def _scalar_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-2, max_value=12000),
        st.sampled_from([0, 1, 5, 20, 486, 3600, 5000, 5001, 10800, 10801, 86400000, 86400001]),
        st.sampled_from(["", "a", "#", "*", "1", "A", "12", "en", "fr-ca", "english", "http://x", "ftp://x"]),
        st.sampled_from(["get", "post", "GET", "put", "kazoo", "twiml", "form", "json", "xml", "mp3", "ogg"]),
        st.sampled_from(["start", "stop", "s", "ms", "days", "a", "both", "idle", "busy", "female", "flite"]),
        st.sampled_from(["simultaneous", "single", "weighted_random", "check", "compose", "external"]),
        st.sampled_from(["0123456789abcdef0123456789abcdef", "x" * 33, "y" * 1001]),
    )


def _values() -> st.SearchStrategy[Any]:
    scalar = _scalar_values()
    return st.one_of(
        scalar,
        st.lists(st.sampled_from(["1", "#", "*", "A", "1", ""]), max_size=4),
        st.lists(scalar, max_size=2),
        st.sampled_from([
            {}, {"name": "room"}, {"name": ""}, {"X-A": "1"}, {"in": {"X-B": "2"}}, {"in": {"X-B": 2}},
            [{"endpoint_type": "user", "id": "u"}], [{"id": "u"}], [], [{"endpoint_type": "group", "id": ""}],
            {"media_id": "m"}, {"play": "no"}, {"internal": "r1"}, {"member": {"join_muted": "no"}},
        ]),
    )  # fmt: skip


def _plausible(rule: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values near what ``rule`` (a Kazoo property schema) allows: valid ones and just-invalid ones."""
    rule = kazoo_resolve(rule)
    if "enum" in rule:
        return st.sampled_from([*rule["enum"], "not-in-enum"])
    kind = rule.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = rule.get("minimum", 0), rule.get("maximum", 100000)
        return st.sampled_from([low - 1, low, low + 1, high, high + 1, 20])
    if kind == "string":
        low, high = rule.get("minLength", 0), rule.get("maxLength", 40)
        samples = ["x" * low, "x" * high, "x" * (high + 1), "https://ivr.example.com/a", "en-us", "12"]
        return st.sampled_from([v for v in samples if low > 0 or v] + ([""] if low > 0 else []))
    if kind == "array":
        items = rule.get("items", {})
        return st.lists(_plausible(items) if isinstance(items, dict) and items else st.just("1"), max_size=3)
    if kind == "object" and "properties" in rule:
        names = sorted(rule["properties"])
        return st.fixed_dictionaries({}, optional={n: _plausible(rule["properties"][n]) for n in names})
    return _values()


@st.composite
def _module_data(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    module = draw(st.sampled_from(sorted(SUPPORTED_MODULES)))
    properties = kazoo_schema(f"callflows.{module}").get("properties", {})
    data = copy.deepcopy(MODULE_EXAMPLES[module]) if draw(st.booleans()) else {}
    for name in (
        draw(st.lists(st.sampled_from(sorted(properties)), max_size=3, unique=True)) if properties else []
    ):
        if draw(st.integers(0, 4)) == 0:
            data[name] = draw(_values())
        else:
            data[name] = draw(_plausible(properties[name]))
    return module, data


@settings(max_examples=800, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_module_data())
def test_generated_module_data_is_judged_like_kazoo(case: tuple[str, dict[str, Any]]) -> None:
    module, data = case
    original = {"module": module, "data": data}
    kazoo_problems = flow_errors(original)
    ours, rejection = _our_verdict(original)
    if rejection is not None:
        assert kazoo_problems, f"we reject what Kazoo accepts: {rejection}"
        return
    assert kazoo_problems == [], "we accept what Kazoo rejects"
    assert ours == kazoo_filled_flow(original)


def _our_verdict(flow: dict[str, Any]) -> tuple[dict[str, Any] | None, TranslationError | None]:
    try:
        return validate_flow(copy.deepcopy(flow)), None
    except TranslationError as exc:
        return None, exc


def test_every_kazoo_callflow_module_is_either_validated_or_passed_through() -> None:
    from pivot_worker.callflow.modules import PASS_THROUGH_MODULES

    kazoo = {
        p.name[len("callflows.") : -len(".json")]
        for p in kazoo_schemas_dir().glob("callflows.*.json")
        if p.name.count(".") == 2
    } - {"action"}
    assert not (SUPPORTED_MODULES & PASS_THROUGH_MODULES)
    assert kazoo - SUPPORTED_MODULES == PASS_THROUGH_MODULES
