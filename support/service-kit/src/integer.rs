//! Integers in request bodies as JSON Schema counts them: `3902.0` is the
//! integer 3902 (an integral number), so a body that validates against the
//! documented schema is accepted. Fractions, negatives and values out of
//! range are refused as before.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

struct Integral;

impl Visitor<'_> for Integral {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        // 2^64 is the first f64 above u64::MAX.
        if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
            Ok(v as u64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

/// `#[serde(deserialize_with = "service_kit::integer::u64")]`
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Integral)
}

/// `#[serde(default, deserialize_with = "service_kit::integer::optional_u32")]`
pub fn optional_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    struct Optional;
    impl<'de> Visitor<'de> for Optional {
        type Value = Option<u32>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("null or a non-negative integer below 2^32")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            let value = u64(d)?;
            u32::try_from(value)
                .map(Some)
                .map_err(|_| de::Error::invalid_value(de::Unexpected::Unsigned(value), &self))
        }
    }
    d.deserialize_option(Optional)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Body {
        #[serde(deserialize_with = "super::u64")]
        seq: u64,
        #[serde(default, deserialize_with = "super::optional_u32")]
        max: Option<u32>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integral_numbers_are_integers_whatever_their_spelling() {
        let body = parse(r#"{"seq": 9185978.0, "max": 3902.0}"#).expect("integral floats");
        assert_eq!((body.seq, body.max), (9185978, Some(3902)));
        let body = parse(r#"{"seq": 7}"#).expect("plain");
        assert_eq!((body.seq, body.max), (7, None));
        assert_eq!(parse(r#"{"seq": 1, "max": null}"#).expect("null").max, None);
        assert_eq!(parse(r#"{"seq": 1e3}"#).expect("exponent").seq, 1000);
    }

    #[test]
    fn fractions_negatives_and_out_of_range_are_refused() {
        for bad in [
            r#"{"seq": 1.5}"#,
            r#"{"seq": -1}"#,
            r#"{"seq": -1.0}"#,
            r#"{"seq": 1e30}"#,
            r#"{"seq": "1"}"#,
            r#"{"seq": 1, "max": 4294967296}"#,
            r#"{"seq": 1, "max": 2.5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
