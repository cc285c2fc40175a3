//! JSON command bodies: objects only, read whole before they are typed.
//!
//! serde's derived structs also read a JSON array of their fields in order
//! (`[5]` as `{"seq": 5}`, `[null]` as `{}` for a join), skip the fields they
//! do not know without checking them (invalid UTF-8 or a lone surrogate
//! there passed), and serde_json calls a well-formed body with a mistyped
//! enum field (`{"role": null}`) a syntax error. Every body of DESIGN.md §6
//! is an object, so a body is parsed as a JSON object first (any syntax or
//! encoding error anywhere is `malformed_json`, a repeated key is refused),
//! then typed from it (any mismatch is `invalid_body`). Found by the
//! command_bodies fuzz target (`fuzz/`).

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::marker::PhantomData;

/// `web::Json<T>` for a body that must be a JSON object (same limit and
/// error contract: the app's `JsonConfig`).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Json::<Object<T>>::from_request(req, payload);
        Box::pin(async move { Ok(Json(body.await?.into_inner().0)) })
    }
}

/// `T` read from a JSON object (and from nothing else).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Object<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);

        impl<'de, T: DeserializeOwned> Visitor<'de> for Fields<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
                let mut fields = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if fields.contains_key(&key) {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    let value = map.next_value::<Value>()?;
                    fields.insert(key, value);
                }
                T::deserialize(Value::Object(fields)).map_err(de::Error::custom)
            }
        }

        d.deserialize_map(Fields(PhantomData)).map(Object)
    }
}

/// `#[serde(deserialize_with = "super::json::string_enum")]` for an enum
/// of unit variants that a body must spell as a string: serde also reads the
/// map form `{"private": null}` as `Private`, which no document allows.
pub(crate) fn string_enum<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    T::deserialize(de::value::StringDeserializer::<D::Error>::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Read {
        #[serde(deserialize_with = "service_kit::integer::u64")]
        seq: u64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Kind {
        #[serde(deserialize_with = "super::string_enum")]
        kind: domain::ChannelKind,
    }

    #[test]
    fn enums_are_strings() {
        let kind = |text: &str| serde_json::from_str::<Object<Kind>>(text).map(|o| o.0.kind);
        assert_eq!(
            kind(r#"{"kind": "private"}"#).ok(),
            Some(domain::ChannelKind::Private)
        );
        for bad in [
            r#"{"kind": {"private": null}}"#,
            r#"{"kind": "secret"}"#,
            r#"{"kind": 1}"#,
        ] {
            assert!(kind(bad).is_err_and(|e| e.is_data()), "{bad}");
        }
    }

    fn parse(text: &[u8]) -> Result<Read, serde_json::Error> {
        serde_json::from_slice::<Object<Read>>(text).map(|o| o.0)
    }

    #[test]
    fn objects_are_read_and_nothing_else_is() {
        assert_eq!(
            parse(br#"{"seq": 7, "extra": [1]}"#).ok(),
            Some(Read { seq: 7 })
        );
        assert_eq!(parse(br#"{"seq": 1e3}"#).ok(), Some(Read { seq: 1000 }));
        for (body, data) in [
            (&b"[5]"[..], true),
            (b"5", true),
            (b"null", true),
            (br#"{"seq": 1, "seq": 2}"#, true),
            (br#"{"seq": "1"}"#, true),
            (br#"{"seq": 1, "x": "\ud800"}"#, false),
            (b"{\"seq\": 1, \"x\": \"\xff\"}", false),
            (br#"{"seq": 1"#, false),
        ] {
            let err = parse(body).expect_err(&String::from_utf8_lossy(body));
            assert_eq!(
                err.is_data(),
                data,
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
