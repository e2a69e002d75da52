"""Place one test call from the command line: ``python -m tests.sip.call DID [DIGITS ...]``.

Each DIGITS argument is sent as one RFC 2833 segment, 2.5 s after the previous one (or after the answer);
the call then waits up to 30 s for callcore to hang up. Prints sipp's verdict.
"""

from __future__ import annotations

import sys

from tests.sip import Dtmf, run_caller


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    did, segments = argv[0], [Dtmf(d, pause_before_ms=2500) for d in argv[1:]]
    result = run_caller(did, segments, bye_timeout_ms=30_000)
    print(result.describe())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
