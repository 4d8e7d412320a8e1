"""How an amount of money is written, everywhere promptgrid writes one in words.

One rule: dollars with four decimals, and below a cent as many more as the first two
significant digits need, so an amount that is not zero never reads as ``$0.0000``
(``$0.000042``). Zero is ``$0``; thousands are grouped. The HTML report's ``money()``
(``exports/report/summary.js``) writes the same; the XLSX sheets keep the number and give it
the number format ``cells.NUMBER_FORMATS["cost"]``.
"""

from __future__ import annotations

import math

__all__ = ["usd"]

#: The most decimals written: below a trillionth of a dollar, amounts are noise.
_MAX_DECIMALS = 12


def usd(amount: float | None) -> str:
    """``amount`` in dollars, with enough digits to be non-zero when it is (``-`` for none)."""
    if amount is None or math.isnan(amount):
        return "-"
    if amount == 0:
        return "$0"
    size = abs(amount)
    sign = "-" if amount < 0 else ""
    if size < 10.0**-_MAX_DECIMALS:
        return f"{sign}${size:.2g}"
    decimals = 4 if size >= 0.01 else min(_MAX_DECIMALS, 1 - math.floor(math.log10(size)))
    return f"{sign}${size:,.{decimals}f}"
