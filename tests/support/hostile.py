"""Hypothesis strategies for hostile input: the texts, JSON values and raw bodies attackers and broken clients send.

Shared by the hostile-input tests. Texts cover the classes named in issue 7: empty, 100 KB,
control characters, right-to-left and combining marks, emoji, lone surrogates (sent as JSON
`\\ud800` escapes, since `json.dumps` escapes them), markup meant for the platforms' own
formats, and chat commands. Raw bodies add invalid UTF-8, `NaN`/`Infinity`, JSON nested
10 000 levels deep, an integer of 5000 digits (Python refuses to parse it), duplicate keys.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

HUNDRED_KB = "a" * 100_000
SAMPLE_TEXTS = [
    "", " ", "\n\t\r", "\x00", "\x00\x01\x1b[31m\x7f\x9f", HUNDRED_KB, "x" * 5000, "x" * 5001,
    "\u202eevil.exe\u202c", "\u200fשלום עולם", "مرحبا، أين طلبي؟", "e" + "\u0301\u0302\u0303" * 300,  # zalgo
    "👨‍👩‍👧‍👦🏳️‍🌈👍🏽", "🇺🇳" * 100, "\ufeffBOM", "\u2028\u2029", "\ud800", "\udfff", "a\ud83dz", "\U0010ffff",
    "<script>alert(1)</script>", "&lt;&amp;<b>bold</b>", "*_~`>quote", "<@U123> <!channel> <!here>",
    "/reload", "/queue", "/human", "/start@other_bot", "%s%n{0}{{x}}", "' OR 1=1 --", "\r\n\r\nHTTP/1.1 200 OK",
    "where is my order?", "I want a refund!!!",
]
_ALPHABET = st.characters(categories=("Cc", "Cf", "Cs", "Co", "Mn", "Me", "So", "Sk", "Zs", "Zl", "Zp", "Lo", "Ll"))

# Any of the above, or generated text from the awkward Unicode categories (controls, format, surrogates, marks, ...).
texts = st.one_of(st.sampled_from(SAMPLE_TEXTS), st.text(alphabet=_ALPHABET, max_size=60), st.text(max_size=30))
short_texts = st.one_of(st.sampled_from(["", "text", "id", "\ud800", "__proto__", "a" * 300]),
                        st.text(alphabet=_ALPHABET, max_size=12))

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(short_texts, inner, max_size=4)),
                           max_leaves=8)


def dumps(value: object) -> bytes:
    """JSON the way a careless client writes it: NaN and Infinity allowed, surrogates as \\uXXXX escapes."""
    return json.dumps(value, allow_nan=True).encode("ascii")


RAW_BODIES = [
    b"", b" ", b"null", b"0", b'"just a string"', b"[]", b"{}", b"{", b"}", b"\x00", b"\xff\xfe\xfd",
    b'{"sender": "a", "message": "\xff\xfe invalid utf-8"}', b'\xef\xbb\xbf{"sender": "a", "message": "bom"}',
    b'{"sender": "a", "message": NaN}', b'{"sender": "a", "message": -Infinity}', b'{"text": NaN}',
    b'{"texts": [Infinity]}', b'{"update_id": NaN}', b'{"update_id": 1e400}',
    b'{"sender": "a", "message": "x", "message": ["dup"]}', b'{"sender": "\\ud800", "message": "\\udfff"}',
    b'{"text": "\\ud83d"}', b'{"agent": "\\ud800", "text": "\\ud800"}',
    b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"sender": "a", "message": ' + b"[" * 900 + b"]" * 900 + b"}",  # parseable, but deep
    b'{"update_id": ' + b"9" * 5000 + b"}", b'{"sender": "a", "message": "' + HUNDRED_KB.encode() + b'"}',
    HUNDRED_KB.encode(), bytes(range(256)),
]
raw_bodies = st.one_of(st.sampled_from(RAW_BODIES), st.binary(max_size=200))
content_types = st.sampled_from(["application/json", "application/json", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "",
                                 "application/json; charset=latin-1"])


def with_fields(**fields: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """A JSON object with the given fields set to hostile values (each maybe missing), plus stray keys."""
    return st.builds(lambda known, extra: dumps({**extra, **known}),
                     st.fixed_dictionaries({}, optional=fields),
                     st.dictionaries(short_texts, json_values, max_size=2))


def bodies(**fields: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """Hostile bodies for an endpoint whose JSON has `fields`: right shape with bad values, any JSON, raw bytes."""
    return st.one_of(with_fields(**fields), json_values.map(dumps), raw_bodies)


def detail_of(response) -> object:
    """The message of a 4xx answer; fails the test when there is none (a 4xx must say what was wrong)."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    message = payload.get("detail") or payload.get("error") if isinstance(payload, dict) else None
    assert message or response.text.strip(), (response.status_code, response.text[:200])
    return message or response.text
