//! The contract files live beside this crate (`events/`, `ws/`, `openapi.json`); its tests check the code against them.
