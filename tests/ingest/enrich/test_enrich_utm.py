"""UTM tags and page paths from page URLs, including garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadlink.ingest.enrich.utm import MAX_UTM_LENGTH, UTM_KEYS, page_path, utm_from_url


def test_reads_all_five_tags() -> None:
    url = (
        "https://shop.example.com/p/1?utm_source=newsletter&utm_medium=email"
        "&utm_campaign=spring%20sale&utm_term=running+shoes&utm_content=hero&x=1"
    )
    assert utm_from_url(url) == {
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring sale",
        "utm_term": "running shoes",
        "utm_content": "hero",
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, {}),
        ("", {}),
        ("https://example.com/", {}),
        ("https://example.com/?utm_source=", {}),
        ("https://example.com/?utm_source=%20%20", {}),
        ("https://example.com/?utm_source=+google+", {"utm_source": "google"}),
        ("https://example.com/?UTM_Source=Google", {"utm_source": "Google"}),
        ("https://example.com/?utm_source=a&utm_source=b", {"utm_source": "a"}),
        ("https://example.com/#x?utm_source=frag", {}),
        ("/relative?utm_medium=cpc", {"utm_medium": "cpc"}),
        ("https://example.com/?utm_source=%E2%9C%93", {"utm_source": "✓"}),
        ("https://example.com/?utm_source=%ZZ", {"utm_source": "%ZZ"}),
        ("http://[::1?utm_source=x", {}),
    ],
)
def test_edge_cases(url: str | None, expected: dict[str, str]) -> None:
    assert utm_from_url(url) == expected


def test_values_are_capped() -> None:
    tags = utm_from_url("https://example.com/?utm_campaign=" + "a" * 1000)
    assert tags == {"utm_campaign": "a" * MAX_UTM_LENGTH}


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://example.com/shoes/red?size=9#reviews", "/shoes/red"),
        ("https://example.com", "/"),
        ("https://example.com?x=1", "/"),
        ("https://example.com/%C3%A9t%C3%A9", "/%C3%A9t%C3%A9"),
        ("/already/a/path?q=1", "/already/a/path"),
        ("", None),
        ("   ", None),
        (None, None),
        ("http://[::1/broken", None),
    ],
)
def test_page_path(url: str | None, path: str | None) -> None:
    assert page_path(url) == path


@given(st.one_of(st.none(), st.text(max_size=300)))
def test_garbage_never_raises(url: str | None) -> None:
    tags = utm_from_url(url)
    assert set(tags) <= set(UTM_KEYS)
    assert all(0 < len(v) <= MAX_UTM_LENGTH and v == v.strip() for v in tags.values())
    path = page_path(url)
    assert path is None or isinstance(path, str)


@given(
    key=st.sampled_from(UTM_KEYS),
    value=st.text(min_size=1, max_size=200).filter(lambda v: v.strip()),
)
def test_round_trip_of_encoded_values(key: str, value: str) -> None:
    from urllib.parse import urlencode

    tags = utm_from_url("https://example.com/?" + urlencode({key: value}))
    expected = value.strip()[:MAX_UTM_LENGTH].strip()
    assert tags == ({key: expected} if expected else {})
