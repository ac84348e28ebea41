"""The emergency number follows the clinic's country."""

from __future__ import annotations

import pytest

from service.replies.emergency import DEFAULT_NUMBER, emergency_number


@pytest.mark.parametrize(
    ("region", "number"),
    [
        ("US", "911"),
        ("CA", "911"),
        ("PR", "911"),
        ("GB", "999"),
        ("FR", "112"),
        ("ES", "112"),
        ("DE", "112"),
        ("IE", "112"),
        ("AU", "000"),
        ("gb", "999"),
    ],
)
def test_the_emergency_number_is_the_clinics_countrys(region: str, number: str) -> None:
    assert emergency_number(region=region) == number


def test_a_country_without_an_entry_gets_the_number_mobile_networks_route_everywhere() -> None:
    assert emergency_number(region="ZZ") == DEFAULT_NUMBER == "112"
