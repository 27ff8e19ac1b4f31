//! Home Assistant's discovery matchers (`bluetooth`, `zeroconf`, `ssdp`, `dhcp`, `usb`,
//! `homekit`): known keys get their types checked; unknown keys are allowed, as Home Assistant
//! adds matcher keys over time.

use serde_json::{Map, Value};

use super::ProblemKind;
use super::parse::Checker;
use super::path::Path;

/// The expected shape of a discovery matcher's known key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shape {
    /// A string.
    Str,
    /// A boolean.
    Bool,
    /// An integer.
    Int,
    /// An array of integers.
    Ints,
    /// An array of strings.
    Strs,
    /// An object with string values.
    StrMap,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Str => "string",
            Shape::Bool => "boolean",
            Shape::Int => "integer",
            Shape::Ints => "array of integers",
            Shape::Strs => "array of strings",
            Shape::StrMap => "object of strings",
        }
    }
}

/// Known keys of Bluetooth matchers (Home Assistant's `hassfest` schema).
pub(super) const BLUETOOTH: &[(&str, Shape)] = &[
    ("connectable", Shape::Bool),
    ("service_uuid", Shape::Str),
    ("service_data_uuid", Shape::Str),
    ("local_name", Shape::Str),
    ("manufacturer_id", Shape::Int),
    ("manufacturer_data_start", Shape::Ints),
];

/// Known keys of zeroconf matcher objects.
pub(super) const ZEROCONF: &[(&str, Shape)] = &[
    ("type", Shape::Str),
    ("name", Shape::Str),
    ("macaddress", Shape::Str),
    ("manufacturer", Shape::Str),
    ("model", Shape::Str),
    ("properties", Shape::StrMap),
];

/// Known keys of DHCP matchers.
pub(super) const DHCP: &[(&str, Shape)] = &[
    ("macaddress", Shape::Str),
    ("hostname", Shape::Str),
    ("registered_devices", Shape::Bool),
];

/// Known keys of USB matchers.
pub(super) const USB: &[(&str, Shape)] = &[
    ("vid", Shape::Str),
    ("pid", Shape::Str),
    ("serial_number", Shape::Str),
    ("manufacturer", Shape::Str),
    ("description", Shape::Str),
    ("known_devices", Shape::Strs),
];

/// Known keys of the HomeKit matcher.
pub(super) const HOMEKIT: &[(&str, Shape)] = &[("models", Shape::Strs)];

impl Checker {
    /// Checks a value against a matcher key's expected shape.
    fn shape(&mut self, at: Path<'_>, value: &Value, shape: Shape) {
        match (shape, value) {
            (Shape::Str, Value::String(_)) | (Shape::Bool, Value::Bool(_)) => {}
            (Shape::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            (Shape::Ints, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.shape(at.index(i), item, Shape::Int);
                }
            }
            (Shape::Strs, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.shape(at.index(i), item, Shape::Str);
                }
            }
            (Shape::StrMap, Value::Object(map)) => {
                for (key, item) in map {
                    self.shape(at.key(key), item, Shape::Str);
                }
            }
            (_, other) => self.wrong_type(at, shape.name(), other),
        }
    }

    /// A matcher object whose known keys have the right shapes (unknown keys are allowed:
    /// Home Assistant adds matcher keys over time).
    pub(super) fn matcher(
        &mut self,
        at: Path<'_>,
        value: Value,
        fields: &[(&str, Shape)],
    ) -> Option<Map<String, Value>> {
        let map = self.object(at, value)?;
        for &(key, shape) in fields {
            if let Some(v) = map.get(key) {
                self.shape(at.key(key), v, shape);
            }
        }
        Some(map)
    }

    pub(super) fn matchers(
        &mut self,
        at: Path<'_>,
        value: Value,
        fields: &[(&str, Shape)],
        non_empty: bool,
    ) -> Vec<Map<String, Value>> {
        let Some(items) = self.array(at, value) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let here = at.index(i);
            if let Some(map) = self.matcher(here, item, fields) {
                if non_empty && map.is_empty() {
                    self.report(here, ProblemKind::Empty);
                }
                out.push(map);
            }
        }
        out
    }

    /// Zeroconf matchers: a service type, or an object with a string `type`.
    pub(super) fn zeroconf(&mut self, at: Path<'_>, value: Value) -> Option<Vec<Value>> {
        let items = self.array(at, value)?;
        for (i, item) in items.iter().enumerate() {
            let here = at.index(i);
            match item {
                Value::String(_) => {}
                Value::Object(map) => {
                    if !map.contains_key("type") {
                        self.report(here.key("type"), ProblemKind::Missing);
                    }
                    for &(key, shape) in ZEROCONF {
                        if let Some(v) = map.get(key) {
                            self.shape(here.key(key), v, shape);
                        }
                    }
                }
                other => self.wrong_type(here, "string or object", other),
            }
        }
        Some(items)
    }
}
