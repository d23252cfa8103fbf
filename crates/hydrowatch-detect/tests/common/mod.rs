//! What the detector's integration tests share: their start and a deterministic noise.

use hydrowatch_core::Timestamp;

/// 2024-01-01 00:00 UTC, a Monday.
pub(crate) const START: Timestamp = 1_704_067_200;
/// Seconds in a day.
pub(crate) const DAY: i64 = 86_400;

/// Deterministic noise in [-1, 1) for `x` (a time, a day's number) and a `salt` per quantity.
pub(crate) fn noise(x: i64, salt: u64) -> f64 {
    let mut x = (x as u64) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}
