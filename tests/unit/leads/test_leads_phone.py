"""Phone numbers to E.164 and the callee's time zone."""

from __future__ import annotations

import pytest

from callcore.leads.phone import InvalidNumber, choose_zone, distinct_zones, normalize, number_zones, region_zone


@pytest.mark.parametrize("raw", [
    "06-12345678", "+31 6 1234 5678", "0031612345678", "31612345678", "tel:+31-6-12345678", " (06) 1234 5678 ",
    "+31 (0)6 12345678",
])
def test_dutch_notations_become_e164(raw: str) -> None:
    n = normalize(raw, "NL")
    assert n.e164 == "+31612345678" and n.region == "NL" and n.line_type == "mobile" and n.digits == "31612345678"


def test_other_regions_and_line_types() -> None:
    assert normalize("020-1234567", "NL").line_type == "fixed_line"
    assert normalize("(212) 555-0123", "US").e164 == "+12125550123"
    assert normalize("+32 2 555 12 34", "NL").region == "BE"  # a country code wins over the default region
    assert normalize("0800-0222", "NL").line_type == "toll_free"


@pytest.mark.parametrize("raw, reason", [
    ("", "no phone number"),
    ("   ", "no phone number"),
    ("bel mij niet", "not a phone number"),
    ("0612345", "not a valid number for NL"),
    ("+31 6 1234 56789 0", "not a valid number"),
    ("0906-1234567", "premium-rate"),
    ("+44 7700 900123", "not a valid number for GB"),  # Ofcom's range reserved for drama
])
def test_invalid_numbers_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidNumber, match=reason):
        normalize(raw, "NL")


def test_lenient_mode_for_do_not_call_entries() -> None:
    # A DNC list blocks anything that might be dialled: a possible number is enough (premium-rate too).
    assert normalize("0906-1234567", "NL", strict=False).e164 == "+319061234567"
    with pytest.raises(InvalidNumber):
        normalize("12", "NL", strict=False)


def test_single_zone_from_the_number() -> None:
    z = choose_zone("+12125550123", "America/Chicago")
    assert (z.timezone, z.timezones, z.source, z.ambiguous) == ("America/New_York", ("America/New_York",), "number", False)
    assert choose_zone("+14155552671", "America/New_York").timezone == "America/Los_Angeles"
    assert choose_zone("+31612345678", "UTC").timezone == "Europe/Amsterdam"


def test_equivalent_zones_count_as_one() -> None:
    # UK mobiles list London, Guernsey, Jersey and the Isle of Man: one behaviour, the common name wins.
    z = choose_zone("+447911123456", "Europe/Amsterdam")
    assert z.timezone == "Europe/London" and z.source == "number" and not z.ambiguous
    assert distinct_zones(("Europe/Jersey", "Europe/London"), prefer="Europe/Jersey") == ("Europe/Jersey",)
    # Amsterdam and Berlin keep the same clocks: one of them stands for both.
    assert distinct_zones(("Europe/Amsterdam", "Europe/Berlin", "America/New_York")) == (
        "America/New_York", "Europe/Amsterdam")
    assert distinct_zones(("Etc/Unknown", "Mars/Olympus_Mons")) == ()


def test_ambiguous_numbers_fall_back_to_the_campaign_zone_and_keep_candidates() -> None:
    z = choose_zone("+18005550199", "America/Chicago")  # US toll-free: anywhere in the NANP
    assert z.timezone == "America/Chicago" and z.source == "campaign" and z.ambiguous
    assert "Pacific/Honolulu" in z.timezones and "America/New_York" in z.timezones
    assert number_zones("+18005550199", prefer="America/Chicago")[0:1] != ()
    au = choose_zone("+61412345678", "Australia/Sydney")
    assert au.ambiguous and au.timezone == "Australia/Sydney" and "Australia/Perth" in au.timezones


def test_unknown_zone_falls_back_without_being_ambiguous() -> None:
    z = choose_zone("+882345678901", "Europe/Amsterdam")  # an international network: no zone
    assert z == choose_zone("+882345678901", "Europe/Amsterdam")
    assert z.timezone == "Europe/Amsterdam" and z.source == "campaign" and z.timezones == ("Europe/Amsterdam",)
    assert not z.ambiguous


def test_a_timezone_column_wins_and_typos_are_errors() -> None:
    z = choose_zone("+31612345678", "Europe/Amsterdam", column=" Europe/Madrid ")
    assert (z.timezone, z.source, z.timezones) == ("Europe/Madrid", "column", ("Europe/Madrid",))
    assert choose_zone("+31612345678", "Europe/Amsterdam", column="").source == "number"
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Amsterdm'"):
        choose_zone("+31612345678", "Europe/Amsterdam", column="Europe/Amsterdm")


def test_region_zone() -> None:
    assert region_zone("NL") == "Europe/Amsterdam"
    assert region_zone("GB") == "Europe/London"
    assert region_zone("US") is None and region_zone("ES") is None  # several zones (the Canaries)
