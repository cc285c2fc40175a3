//! Mutations of a seed: byte-level (flips, insertions of interesting bytes,
//! deletions, repeats, truncation, splices of two seeds) and, where the
//! input is JSON, structure-aware (replace, remove or deeply nest a node,
//! duplicate a key). Each is plain data, so proptest shrinks the list of
//! mutations and their positions toward the smallest change that fails.

use crate::json::json_value;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::Value;
use std::sync::Arc;

/// Bytes that break parsers: NUL, U+FFFF, a BOM, invalid UTF-8 (an overlong
/// NUL, a CESU-encoded surrogate), lone surrogate escapes, numbers at and
/// past the integer limits, deep nesting, JSON and query punctuation.
const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\\u0000",
    "\u{FFFF}".as_bytes(),
    b"\\uFFFF",
    "\u{FEFF}".as_bytes(),
    b"\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\\ud800",
    b"\\udfff",
    b"\\ud800\\udc00",
    b"\\udc00\\ud800",
    b"-0",
    b"+1",
    b"00",
    b"1e999",
    b"-1e999",
    b"1.0",
    b"0.5",
    b"1e3",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999999999999999999999",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":",
    b"\"",
    b"\\",
    b",",
    b":",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"true",
    b"\"\"",
    b" ",
    b"\t",
    b"\r\n",
    b"%",
    b"%00",
    b"%zz",
    b"%2B",
    b"&",
    b"=",
    b"-",
    b"W/",
    b"*",
];

/// One change to an input.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit {
        at: Index,
        bit: u8,
    },
    SetByte {
        at: Index,
        byte: u8,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    Delete {
        at: Index,
        len: u8,
    },
    Repeat {
        at: Index,
        len: u8,
        times: u8,
    },
    Truncate {
        at: Index,
    },
    /// This input up to `at`, then another seed from `from` on.
    Splice {
        other: Index,
        at: Index,
        from: Index,
    },
    /// JSON: the `node`th value (pre-order) becomes `value`.
    Replace {
        node: Index,
        value: Value,
    },
    /// JSON: the `node`th value is removed from its array or object.
    Remove {
        node: Index,
    },
    /// JSON: the `node`th value is wrapped in `depth` arrays or objects.
    Nest {
        node: Index,
        depth: u16,
        object: bool,
    },
    /// JSON: an object gets one of its keys a second time, with `value`,
    /// before or after the first.
    DuplicateKey {
        node: Index,
        key: Index,
        value: Value,
        first: bool,
    },
}

/// Any mutation, its inserted words and values drawn from `dictionary`.
pub fn mutation(dictionary: Arc<Vec<String>>) -> impl Strategy<Value = Mutation> {
    let mut words: Vec<Vec<u8>> = INTERESTING.iter().map(|b| b.to_vec()).collect();
    for word in dictionary.iter() {
        words.push(word.as_bytes().to_vec());
        words.push(serde_json::to_vec(word).unwrap_or_default());
    }
    prop_oneof![
        2 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        4 => (any::<Index>(), select(words)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<Index>(), 1u8..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<Index>(), 1u8..16, 1u8..64)
            .prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(other, at, from)| Mutation::Splice { other, at, from }),
        6 => json_mutation(dictionary),
    ]
}

/// A mutation that keeps JSON JSON (up to the nesting limit of a parser).
pub fn json_mutation(dictionary: Arc<Vec<String>>) -> impl Strategy<Value = Mutation> {
    let value = json_value(dictionary);
    prop_oneof![
        4 => (any::<Index>(), value.clone()).prop_map(|(node, value)| Mutation::Replace { node, value }),
        1 => any::<Index>().prop_map(|node| Mutation::Remove { node }),
        1 => (any::<Index>(), prop_oneof![3 => 1u16..8, 1 => 100u16..300], any::<bool>())
            .prop_map(|(node, depth, object)| Mutation::Nest { node, depth, object }),
        2 => (any::<Index>(), any::<Index>(), value, any::<bool>())
            .prop_map(|(node, key, value, first)| Mutation::DuplicateKey { node, key, value, first }),
    ]
}

fn position(at: &Index, len: usize) -> usize {
    at.index(len + 1)
}

/// `input` with `mutation` applied; `seeds` are the splice partners. A JSON
/// mutation of an input that is not JSON leaves it as it is.
pub fn apply(input: &[u8], mutation: &Mutation, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    let len = out.len();
    match mutation {
        Mutation::FlipBit { at, bit } if len > 0 => out[at.index(len)] ^= 1 << bit,
        Mutation::SetByte { at, byte } if len > 0 => out[at.index(len)] = *byte,
        Mutation::FlipBit { .. } | Mutation::SetByte { .. } => {}
        Mutation::Insert { at, bytes } => {
            let at = position(at, len);
            out.splice(at..at, bytes.iter().copied());
        }
        Mutation::Delete { at, len: n } => {
            let at = position(at, len);
            out.drain(at..(at + usize::from(*n)).min(len));
        }
        Mutation::Repeat { at, len: n, times } => {
            let at = position(at, len);
            let chunk = out[at..(at + usize::from(*n)).min(len)].to_vec();
            let repeated = chunk.repeat(usize::from(*times));
            out.splice(at..at, repeated);
        }
        Mutation::Truncate { at } => out.truncate(position(at, len)),
        Mutation::Splice { other, at, from } => {
            if !seeds.is_empty() {
                let other = &seeds[other.index(seeds.len())];
                out.truncate(position(at, len));
                out.extend_from_slice(&other[position(from, other.len())..]);
            }
        }
        Mutation::Replace { node, value } => {
            return on_json(input, |root| {
                let n = node.index(count(root));
                if let Some(target) = nth(root, n) {
                    *target = value.clone();
                }
                root.to_string()
            });
        }
        Mutation::Remove { node } => {
            return on_json(input, |root| {
                let n = node.index(count(root));
                remove_nth(root, n);
                root.to_string()
            });
        }
        Mutation::Nest {
            node,
            depth,
            object,
        } => {
            return on_json(input, |root| {
                let n = node.index(count(root));
                if let Some(target) = nth(root, n) {
                    let mut nested = target.take();
                    for _ in 0..*depth {
                        nested = if *object {
                            serde_json::json!({ "a": nested })
                        } else {
                            Value::Array(vec![nested])
                        };
                    }
                    *target = nested;
                }
                root.to_string()
            });
        }
        Mutation::DuplicateKey {
            node,
            key,
            value,
            first,
        } => {
            return on_json(input, |root| {
                let objects = count_objects(root);
                if objects == 0 {
                    return root.to_string();
                }
                let mut text = String::new();
                let dup = Dup {
                    object: node.index(objects),
                    key,
                    value,
                    first: *first,
                };
                write_dup(root, &dup, &mut 0, &mut text);
                text
            });
        }
    }
    out
}

fn on_json(input: &[u8], change: impl FnOnce(&mut Value) -> String) -> Vec<u8> {
    match serde_json::from_slice::<Value>(input) {
        Ok(mut root) => change(&mut root).into_bytes(),
        Err(_) => input.to_vec(),
    }
}

/// Values in `v`, itself included.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count).sum(),
        Value::Object(map) => map.values().map(count).sum(),
        _ => 0,
    }
}

/// The `n`th value of `v` in pre-order (0 is `v`).
fn nth(v: &mut Value, n: usize) -> Option<&mut Value> {
    if n == 0 {
        return Some(v);
    }
    let mut n = n - 1;
    let children: Box<dyn Iterator<Item = &mut Value>> = match v {
        Value::Array(items) => Box::new(items.iter_mut()),
        Value::Object(map) => Box::new(map.values_mut()),
        _ => return None,
    };
    for child in children {
        let size = count(child);
        if n < size {
            return nth(child, n);
        }
        n -= size;
    }
    None
}

/// Removes the `n`th value (not the root) from its parent.
fn remove_nth(v: &mut Value, n: usize) -> bool {
    let mut n = match n.checked_sub(1) {
        Some(n) => n,
        None => return false,
    };
    match v {
        Value::Array(items) => {
            for i in 0..items.len() {
                let size = count(&items[i]);
                if n == 0 {
                    items.remove(i);
                    return true;
                }
                if n < size {
                    return remove_nth(&mut items[i], n);
                }
                n -= size;
            }
            false
        }
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let size = map.get(&key).map_or(0, count);
                if n == 0 {
                    map.remove(&key);
                    return true;
                }
                if n < size {
                    return map.get_mut(&key).is_some_and(|child| remove_nth(child, n));
                }
                n -= size;
            }
            false
        }
        _ => false,
    }
}

fn count_objects(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.iter().map(count_objects).sum(),
        Value::Object(map) => 1 + map.values().map(count_objects).sum::<usize>(),
        _ => 0,
    }
}

struct Dup<'a> {
    object: usize,
    key: &'a Index,
    value: &'a Value,
    first: bool,
}

/// Writes `v` as JSON, the `dup.object`th object with a repeated key.
fn write_dup(v: &Value, dup: &Dup<'_>, seen: &mut usize, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_dup(item, dup, seen, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let this = *seen;
            *seen += 1;
            let mut pairs: Vec<(String, Option<&Value>)> =
                map.iter().map(|(k, v)| (k.clone(), Some(v))).collect();
            if this == dup.object && !pairs.is_empty() {
                let key = pairs[dup.key.index(pairs.len())].0.clone();
                let at = if dup.first { 0 } else { pairs.len() };
                pairs.insert(at, (key, None));
            }
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                match value {
                    Some(value) => write_dup(value, dup, seen, out),
                    None => out.push_str(&dup.value.to_string()),
                }
            }
            out.push('}');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    fn index(runner: &mut TestRunner) -> Index {
        any::<Index>()
            .new_tree(runner)
            .map(|t| t.current())
            .unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn json_mutations_keep_json_and_duplicate_keys() {
        let mut runner = TestRunner::deterministic();
        let seed = br#"{"type":"ping","id":[1,{"x":2}]}"#;
        for _ in 0..200 {
            let m = Mutation::DuplicateKey {
                node: index(&mut runner),
                key: index(&mut runner),
                value: Value::from(7),
                first: false,
            };
            let out = apply(seed, &m, &[]);
            let text = String::from_utf8(out).unwrap_or_default();
            assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
            let keys = text.matches("\":").count();
            assert_eq!(keys, 4, "one key more than the seed's three: {text}");
        }
        let nested = apply(
            seed,
            &Mutation::Nest {
                node: index(&mut runner),
                depth: 3,
                object: false,
            },
            &[],
        );
        assert!(String::from_utf8_lossy(&nested).contains("[[["));
    }

    #[test]
    fn byte_mutations_stay_in_bounds() {
        let mut runner = TestRunner::deterministic();
        for input in [&b""[..], b"a", b"abc"] {
            for _ in 0..100 {
                let at = index(&mut runner);
                for m in [
                    Mutation::FlipBit { at, bit: 7 },
                    Mutation::Delete { at, len: 15 },
                    Mutation::Repeat {
                        at,
                        len: 3,
                        times: 2,
                    },
                    Mutation::Truncate { at },
                    Mutation::Splice {
                        other: at,
                        at,
                        from: at,
                    },
                ] {
                    apply(input, &m, &[b"xyz".to_vec()]);
                }
            }
        }
    }
}
