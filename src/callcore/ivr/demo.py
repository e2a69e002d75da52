"""The first flow, so the whole chain is visible end to end (replaced by YAML flows in the IVR issue).

DID 1000: answer, greet, collect one digit (barge-in allowed), say it back, say goodbye, hang up.
"""

from __future__ import annotations

from callcore.calls.call import ALL_DIGITS, Call


async def say_digit(call: Call) -> None:
    await call.answer()
    await call.play("sound:hello-world", interrupt=ALL_DIGITS)
    digit = await call.collect(1, terminator="", first_timeout=8.0)
    if digit:
        await call.set_variable("digit", digit)
        await call.play(["sound:you-entered", f"digits:{digit}"])
    await call.play("sound:goodbye")
    await call.hangup()
