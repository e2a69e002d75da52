"""Leads of outbound campaigns: phone numbers and time zones (``phone``), CSV import (``csv_import``),
do-not-call lists (``dnc``), calling windows (``windows``, pure) and the queries the dialer needs (``store``)."""
