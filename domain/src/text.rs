//! Rules every piece of client text follows, whatever field it is in.
//!
//! U+0000 is refused everywhere: PostgreSQL stores neither it in `text` nor
//! `\u0000` in `jsonb`, and no client means it. Names are shown in lists and
//! titles, so they refuse every control character (newlines included).

use crate::DomainError;

/// Refuses U+0000 in any client string.
pub fn check_text(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.contains('\0') {
        return Err(DomainError::invalid(field, "must not contain U+0000"));
    }
    Ok(())
}

/// Refuses any control character (U+0000–U+001F, U+007F–U+009F) in a name.
pub fn check_name(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nul_is_refused_anywhere_and_other_text_is_not() {
        assert!(check_text("content", "a\0b").is_err());
        assert!(check_text("content", "\0").is_err());
        assert!(check_text("content", "line one\nline two\ttab").is_ok());
    }

    #[test]
    fn names_refuse_every_control_character() {
        for bad in ["a\0", "a\nb", "\u{7}", "x\u{9f}", "tab\there"] {
            assert!(check_name("name", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("name", "général – 日本").is_ok());
    }

    proptest! {
        #[test]
        fn a_string_with_a_nul_is_always_refused(a in ".*", b in ".*") {
            let with_nul = format!("{a}\0{b}");
            prop_assert!(check_text("f", &with_nul).is_err());
            prop_assert!(check_name("f", &with_nul).is_err());
        }
    }
}
