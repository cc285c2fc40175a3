//! The hostile strings every client-set field is tried with: SQL and LIKE
//! metacharacters, bidirectional overrides, emoji sequences, combining marks,
//! 4-byte characters, markup. Each carries the test's marker, so the rows a
//! test caused can be found among everyone's.

/// (what, text) pairs without control characters (valid names too).
pub fn hostile(marker: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SQL drop", format!("'; DROP TABLE events; -- {marker}")),
        ("SQL or", format!("\" OR 1=1 -- {marker}")),
        ("SQL comment", format!("{marker}/* */ UNION SELECT 1 --")),
        ("backslashes", format!("\\ {marker} \\\\ \\")),
        ("bind parameters", format!("$1 {marker} $2::text ?")),
        ("LIKE wildcards", format!("% {marker} _ %%")),
        ("RTL override", format!("\u{202E}{marker}gnp.exe\u{202C}")),
        ("emoji", format!("{marker} 😀👍🏽👨‍👩‍👧‍👦🏳️‍🌈")),
        (
            "combining marks",
            format!("{marker} e\u{301} Z\u{351}\u{32D}\u{31F}a\u{308}"),
        ),
        ("4-byte characters", format!("{marker} 𝕳𝖊𝖑𝖑𝖔 𠜎𠜱 🂡")),
        ("markup", format!("<script>alert('{marker}')</script>&amp;")),
        (
            "escape-like text",
            format!("{marker} \\u0000 \\x00 %00 \\0"),
        ),
        ("quotes", format!("'\"`{marker}`\"'")),
        ("zero width", format!("{marker}\u{200B}x\u{FEFF}y\u{2060}")),
        (
            "non-characters",
            format!("{marker}\u{FFFE}\u{FFFF}\u{10FFFF}"),
        ),
        ("private use", format!("{marker}\u{E000}\u{F8FF}")),
    ]
}

/// Text of exactly `chars` characters: `marker` then 4-byte characters.
pub fn of_chars(marker: &str, chars: usize) -> String {
    let fill = chars.saturating_sub(marker.chars().count());
    format!("{marker}{}", "𝕳".repeat(fill))
}

#[test]
fn lengths_are_in_characters() {
    let text = of_chars("mk", 100);
    assert_eq!(text.chars().count(), 100);
    assert_eq!(text.len(), 2 + 98 * 4);
}
