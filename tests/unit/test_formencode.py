from __future__ import annotations

from urllib.parse import parse_qsl, quote_plus, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from pivot_worker.formencode import encode_form, merge_query


def test_nested_objects_use_brackets_and_escape_keys_and_values() -> None:
    body = encode_form({"Digits": {"default": "42"}, "Custom-SIP-Headers": {"X-Foo Bar": "a&b=c"}})
    assert body == "Digits[default]=42&Custom-SIP-Headers[X-Foo+Bar]=a%26b%3Dc"


def test_arrays_booleans_numbers_and_empties() -> None:
    body = encode_form({"User-ID": ["a", "b"], "On": True, "Off": False, "N": 3, "E": {}, "L": [], "Z": None})
    assert body == "User-ID[]=a&User-ID[]=b&On=true&Off=false&N=3"


def test_value_escaping_follows_form_rules() -> None:
    assert encode_form({"k": "a b.c-d~e_f/g+h@é"}) == "k=a+b.c-d~e_f%2Fg%2Bh%40%C3%A9"


def test_round_trip_through_a_standard_parser() -> None:
    params = {"Caller-ID-Name": "Alice & Bob", "To": "2000", "Digits": {"menu": "1#"}}
    pairs = dict(parse_qsl(encode_form(params)))
    assert pairs == {"Caller-ID-Name": "Alice & Bob", "To": "2000", "Digits[menu]": "1#"}


def test_merge_into_url_without_query() -> None:
    assert merge_query("http://h/p", {"a": "1"}) == "http://h/p?a=1"


def test_merge_keeps_developer_query_and_drops_collisions_and_fragment() -> None:
    url = merge_query(
        "http://h/p?tenant=7&From=spoof&&Digits[x]=9&#frag", {"From": "1001", "Digits": {"d": "1"}}
    )
    parts = urlsplit(url)
    assert parts.fragment == ""
    assert parts.query == "tenant=7&From=1001&Digits[d]=1"


def test_merge_with_no_params_keeps_query_clean() -> None:
    assert merge_query("http://h/p?x=1&", {}) == "http://h/p?x=1"


@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20), max_size=8))
def test_any_flat_params_round_trip(params: dict[str, str]) -> None:
    # parse_qsl(keep_blank_values) is the reference decoder; brackets in names are escaped too.
    assert dict(parse_qsl(encode_form(params), keep_blank_values=True)) == params


@given(st.text(max_size=30))
def test_fast_path_and_quoting_agree(text: str) -> None:
    assert encode_form({"k": text}) == "k=" + quote_plus(text, safe="")
