"""Plain text formatting of numbers: counts and durations.

At the bottom of the package beside errors.py (it imports only the standard library),
so an engine can word a message ("2.1e+09 paths, about 3 hours") without importing a
display module, and no two modules of adkit import each other.
"""

from __future__ import annotations


def format_count(n: int) -> str:
    """An exact count with thousands separators, or ~1.148e602 once it has 16+ digits
    (by integer arithmetic: float() overflows past 1e308, and path counts go far beyond)."""
    digits = len(str(n)) - 1
    if digits < 15:
        return f"{n:,}"
    return f"~{n // 10 ** (digits - 3) / 1000:.3f}e{digits}"


def format_seconds(s: float | None) -> str:
    """A duration with a readable unit: 1.23 s, 45.6 ms, 7.8 µs, 900 ns, 3.2 days, ..."""
    if s is None:
        return "—"
    if s > 4.4e17:  # also inf: predictions for path enumeration get there quickly
        return "longer than the age of the universe"
    if s >= 86400 * 365.25 * 2:
        return f"{s / (86400 * 365.25):.3g} years"
    if s >= 86400 * 2:
        return f"{s / 86400:.3g} days"
    if s >= 7200:
        return f"{s / 3600:.3g} hours"
    if s >= 120:
        return f"{s / 60:.3g} minutes"
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


__all__ = ["format_count", "format_seconds"]
