//! Domain types and time helpers shared by every hydrowatch crate. No I/O lives here.
//!
//! Invariants every crate relies on:
//! - a stored or transmitted instant is a [`Timestamp`]: integer Unix seconds, UTC;
//! - local time (a device's IANA zone) appears only at the edges: parsing input, printing output,
//!   and schedules; [`time`] converts, resolving daylight-saving gaps and repeated hours exactly.

pub mod time;

pub use time::{LocalTimeParser, TimeError, Timestamp, from_the_future};

/// One measured value of one series at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// When the value was measured.
    pub ts: Timestamp,
    /// The measured value, in the series' unit. Always finite.
    pub value: f64,
}

/// At most the first 40 characters of `text` (and `...` when cut): what an error message echoes
/// of a value, however long the value is.
pub fn prefix(text: &str) -> String {
    cut(text, 40)
}

/// Why `text` from outside may not be kept, or `None`: the one rule for every text the device
/// and the server take from outside (names, units, ids, comments, reasons), on both databases,
/// before anything stores, shows or mails it. Refused: control characters (NUL, which
/// PostgreSQL refuses; line breaks, which forge lines in e-mail and logs; ESC) and the
/// bidirectional formatting characters (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C),
/// which reorder what a page shows (`U+202E` makes `gnp.exe` read `exe.png`).
pub fn unsafe_text(text: &str) -> Option<String> {
    let bad = text.chars().find(|&c| unsafe_char(c))?;
    Some(format!(
        "holds U+{:04X} ({}), which no text here may hold",
        u32::from(bad),
        if bad.is_control() {
            "a control character"
        } else {
            "a bidirectional formatting character"
        }
    ))
}

/// Whether `c` is a character [`unsafe_text`] refuses.
pub fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// At most the first `chars` characters of `text` (and `...` when cut): what a message quotes
/// of another program's answer or of a configured value.
pub fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// The names a series may have: a letter first, then letters, digits, `_`, `-` or `.`, at most
/// 64 characters. They become CSV headers and JSON keys, so nothing that needs quoting.
pub fn check_series_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if first_ok && rest_ok && name.len() <= 64 {
        Ok(())
    } else {
        Err(format!(
            "series name {:?} is not allowed: use a letter first, then letters, digits, '_', '-' or '.' (at most 64)",
            prefix(name)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_from_outside_hold_no_control_or_bidirectional_characters() {
        for ok in [
            "flow_rate",
            "m³/h",
            "Druck (bar)",
            "Leck bei Hausnr. 12",
            "ポンプ",
        ] {
            assert_eq!(unsafe_text(ok), None, "{ok}");
        }
        for bad in [
            "a\u{0}b",
            "two\nlines",
            "cr\r",
            "\u{1b}[31m",
            "gnp\u{202E}exe",
            "\u{2066}x",
            "del\u{7f}",
        ] {
            assert!(unsafe_text(bad).is_some(), "{bad:?}");
        }
        assert!(unsafe_text("x\u{202E}").unwrap().contains("U+202E"));
    }

    #[test]
    fn prefixes_are_short() {
        assert_eq!(prefix("abc"), "abc");
        assert_eq!(prefix(&"é".repeat(100)), format!("{}...", "é".repeat(40)));
    }

    #[test]
    fn series_names() {
        assert!(check_series_name("flow_rate").is_ok());
        assert!(check_series_name("p2.bar-1").is_ok());
        assert!(check_series_name("").is_err());
        assert!(check_series_name("1flow").is_err());
        assert!(check_series_name("flow rate").is_err());
        assert!(check_series_name(&"a".repeat(65)).is_err());
    }
}
