"""Audio sample formats of the Voice Live wire: PCM16 little-endian and G.711 µ-law / A-law
(8 kHz), decoded to and encoded from int16 numpy arrays (no ``audioop``, removed in 3.13)."""

from __future__ import annotations

import numpy as np


def _ulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


_ULAW = _ulaw_table()
_ALAW = _alaw_table()


def _encode_with(table: np.ndarray, pcm: np.ndarray) -> bytes:
    # nearest code by value: search the sorted table
    order = np.argsort(table, kind="stable")
    sorted_vals = table[order].astype(np.int32)
    x = pcm.astype(np.int32)
    idx = np.clip(np.searchsorted(sorted_vals, x), 1, len(sorted_vals) - 1)
    left, right = sorted_vals[idx - 1], sorted_vals[idx]
    idx = np.where(np.abs(x - left) <= np.abs(right - x), idx - 1, idx)
    return order[idx].astype(np.uint8).tobytes()


def decode(data: bytes, fmt: str) -> np.ndarray:
    """Wire bytes in ``fmt`` (``pcm16``, ``g711_ulaw``, ``g711_alaw``) -> int16 samples."""
    if fmt == "g711_ulaw":
        return _ULAW[np.frombuffer(data, np.uint8)]
    if fmt == "g711_alaw":
        return _ALAW[np.frombuffer(data, np.uint8)]
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], "<i2").astype(np.int16)


def encode(pcm: np.ndarray, fmt: str) -> bytes:
    """int16 samples -> wire bytes in an output format (pcm16 variants or G.711)."""
    if fmt == "g711_ulaw":
        return _encode_with(_ULAW, pcm)
    if fmt == "g711_alaw":
        return _encode_with(_ALAW, pcm)
    return pcm.astype("<i2").tobytes()
