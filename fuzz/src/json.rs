//! Arbitrary JSON built from a target's dictionary (the keys and strings of
//! its seeds), so generated objects reach past "unknown field" and "missing
//! `type`" into the code behind them, plus the numbers and strings parsers
//! get wrong: huge, negative, integral floats, NUL, U+FFFF, empty.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Number, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Numbers at the edges of the integer types and of f64.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        select(vec![
            0u64,
            1,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX,
        ])
        .prop_map(Value::from),
        select(vec![i64::MIN, -1, i32::MIN as i64]).prop_map(Value::from),
        select(vec![
            0.0,
            -0.0,
            1.0,
            0.5,
            -1.0,
            1e300,
            -1e300,
            9007199254740993.0
        ])
        .prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// Strings: the dictionary's, arbitrary ones, and a few that bite.
fn string(dictionary: Arc<Vec<String>>) -> BoxedStrategy<String> {
    let special = select(vec![
        String::new(),
        "\0".into(),
        "\u{FFFF}".into(),
        "\u{FEFF}".into(),
        " ".into(),
        "x".repeat(300),
        "00000000-0000-0000-0000-000000000000".into(),
        "018f0000-0000-7000-8000-000000000000".into(),
        "2024-03-01T09:30:00Z".into(),
    ]);
    if dictionary.is_empty() {
        prop_oneof![2 => any::<String>(), 1 => special].boxed()
    } else {
        let words = (*dictionary).clone();
        prop_oneof![4 => select(words), 2 => any::<String>(), 1 => special].boxed()
    }
}

/// Arbitrary JSON values, at most 5 levels deep, keys from the dictionary.
pub fn json_value(dictionary: Arc<Vec<String>>) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string(dictionary.clone()).prop_map(Value::String),
    ];
    let keys = string(dictionary);
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((keys.clone(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// [`json_value`] as text.
pub fn json_text(dictionary: Arc<Vec<String>>) -> impl Strategy<Value = String> {
    json_value(dictionary).prop_map(|v| v.to_string())
}

/// Every key and string in `value`, for the dictionary.
pub(crate) fn collect_words(value: &Value, words: &mut BTreeSet<String>) {
    match value {
        Value::String(s) if s.len() <= 256 => {
            words.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| collect_words(v, words)),
        Value::Object(map) => {
            for (k, v) in map {
                words.insert(k.clone());
                collect_words(v, words);
            }
        }
        _ => {}
    }
}
