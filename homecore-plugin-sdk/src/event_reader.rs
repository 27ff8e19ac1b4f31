//! A fast reader for the payload every event carries: `hc_on_state_changed`'s
//! [`StateChangedEvent`].
//!
//! serde_json reads a string byte by byte (four bytes at a time at best on wasm32), matches
//! every key through a field visitor and builds each `Cow` through several layers of generic
//! code; in a metered guest that was about 25,000 instructions for a 700-byte event. This
//! reader knows the shape: it scans strings eight bytes at a time, borrows every string
//! without escapes straight from the payload, and hands only what it cannot borrow (strings
//! with escapes) to serde_json. Attributes and members it does not know are stepped over by
//! matching brackets and strings, without being checked: the SDK does not parse what no plugin
//! reads. Attributes are kept as [`RawJson`], checked when a plugin reads them (the host only
//! sends well-formed JSON; checking a state's attributes cost a quarter of a metered guest's
//! event handling).
//!
//! Its results equal serde_json's for every well-formed payload (tested against it, key order,
//! whitespace, escapes and unknown members included). Malformed input is an error, never a
//! panic, except inside what is stepped over unchecked: malformed attributes are an error when
//! read, and malformed unknown members are never looked at (unbalanced brackets or an
//! unterminated string anywhere are always an error: the reader cannot find the end).

use std::borrow::Cow;

use crate::{Context, RawJson, State, StateChangedEvent};

/// Why a payload could not be read: what was expected, and the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    what: String,
    at: usize,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// Boxed, so that a result without a value fits a register: the reader returns one per token.
type Read<T> = Result<T, Box<Malformed>>;

/// Reads a `StateChangedEvent` from the whole of `text`: in the host's own layout (see
/// [`host_layout`]) when it is written that way, else by the general reader.
pub(crate) fn state_changed(text: &str) -> Read<StateChangedEvent<'_>> {
    match host_layout(text) {
        Some(event) => Ok(event),
        None => any_layout(text),
    }
}

/// The fast path: `text` exactly as the host writes it — members in the ABI reference's
/// order, no whitespace, `origin` present only when set — read by matching the fixed parts
/// (keys, brackets, separators) as literals instead of reading and dispatching on keys.
/// `None` as soon as anything differs, malformed input included: the general reader then
/// reads it again (and reports the error), so this path changes no result, only the cost.
/// (Attributes are not checked by either reader: see [`RawJson`].)
fn host_layout(text: &str) -> Option<StateChangedEvent<'_>> {
    let mut r = Reader { text, pos: 0 };
    r.literal(b"{\"entity_id\":")?;
    let entity_id = r.host_string()?;
    r.literal(b",\"old_state\":")?;
    let old_state = r.host_state()?;
    r.literal(b",\"new_state\":")?;
    let new_state = r.host_state()?;
    r.literal(b",\"context\":")?;
    let context = r.host_context()?;
    r.literal(b"}")?;
    (r.pos == text.len()).then_some(StateChangedEvent {
        entity_id,
        old_state,
        new_state,
        context,
    })
}

/// The general reader: members in any order, whitespace, unknown members.
fn any_layout(text: &str) -> Read<StateChangedEvent<'_>> {
    let mut r = Reader { text, pos: 0 };
    let mut entity_id = None;
    let mut old_state = None;
    let mut new_state = None;
    let mut context = None;
    r.object(|r, key| {
        match key.as_ref() {
            "entity_id" => once(r, &mut entity_id, Reader::string)?,
            "old_state" => once(r, &mut old_state, state)?,
            "new_state" => once(r, &mut new_state, state)?,
            "context" => once(r, &mut context, self::context)?,
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    r.end()?;
    Ok(StateChangedEvent {
        entity_id: required(&r, entity_id, "entity_id")?,
        old_state: old_state.flatten(),
        new_state: new_state.flatten(),
        context: required(&r, context, "context")?,
    })
}

/// Stores a member's value, refusing a second occurrence (as serde's derive does).
fn once<'a, T>(
    r: &mut Reader<'a>,
    slot: &mut Option<T>,
    read: impl FnOnce(&mut Reader<'a>) -> Read<T>,
) -> Read<()> {
    if slot.is_some() {
        return Err(r.error("a member that appears once"));
    }
    *slot = Some(read(r)?);
    Ok(())
}

fn required<T>(r: &Reader<'_>, value: Option<T>, name: &str) -> Read<T> {
    value.ok_or_else(|| r.error(&format!("member {name}")))
}

/// A state, or `null`.
fn state<'a>(r: &mut Reader<'a>) -> Read<Option<State<'a>>> {
    if r.null() {
        return Ok(None);
    }
    let mut entity_id = None;
    let mut state = None;
    let mut attributes = None;
    let mut last_changed = None;
    let mut last_updated = None;
    let mut context = None;
    r.object(|r, key| {
        match key.as_ref() {
            "entity_id" => once(r, &mut entity_id, Reader::string)?,
            "state" => once(r, &mut state, Reader::string)?,
            "attributes" => once(r, &mut attributes, Reader::raw)?,
            "last_changed" => once(r, &mut last_changed, Reader::string)?,
            "last_updated" => once(r, &mut last_updated, Reader::string)?,
            "context" => once(r, &mut context, self::context)?,
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    Ok(Some(State {
        entity_id: required(r, entity_id, "entity_id")?,
        state: required(r, state, "state")?,
        attributes: required(r, attributes, "attributes")?,
        last_changed: required(r, last_changed, "last_changed")?,
        last_updated: required(r, last_updated, "last_updated")?,
        context: required(r, context, "context")?,
    }))
}

/// A context; `parent_id`, `user_id` and `origin` may be absent or `null`.
fn context<'a>(r: &mut Reader<'a>) -> Read<Context<'a>> {
    let mut id = None;
    let mut parent_id = None;
    let mut user_id = None;
    let mut origin = None;
    r.object(|r, key| {
        match key.as_ref() {
            "id" => once(r, &mut id, Reader::string)?,
            "parent_id" => once(r, &mut parent_id, Reader::optional_string)?,
            "user_id" => once(r, &mut user_id, Reader::optional_string)?,
            "origin" => once(r, &mut origin, Reader::optional_string)?,
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    Ok(Context {
        id: required(r, id, "id")?,
        parent_id: parent_id.flatten(),
        user_id: user_id.flatten(),
        origin: origin.flatten(),
    })
}

/// Eight copies of a byte.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// A mask whose lowest set bit lies in the first of the eight bytes of `v` (little-endian) that
/// is a quote, a backslash or a control character; 0 when there is none. (Bits above the first
/// such byte may be spurious: the subtraction borrows across bytes.)
fn attention(v: u64) -> u64 {
    const LOW: u64 = splat(0x01);
    const HIGH: u64 = splat(0x80);
    let zero_in = |x: u64| x.wrapping_sub(LOW) & !x & HIGH;
    let quote = zero_in(v ^ splat(b'"'));
    let backslash = zero_in(v ^ splat(b'\\'));
    // Bytes below 0x20: subtracting 0x20 borrows into their top bit (bytes ≥ 0x80 are masked).
    let control = v.wrapping_sub(splat(0x20)) & !v & HIGH;
    quote | backslash | control
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn error(&self, expected: &str) -> Box<Malformed> {
        let what = match self.bytes().get(self.pos) {
            Some(b) => format!("expected {expected}, found {:?}", char::from(*b)),
            None => format!("expected {expected}, found the end"),
        };
        Box::new(Malformed { what, at: self.pos })
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// Steps over `expected` when the text continues with exactly these bytes. Inlined with
    /// a literal of known length, this is a few word loads compared with constants.
    #[inline(always)]
    fn literal<const N: usize>(&mut self, expected: &[u8; N]) -> Option<()> {
        let rest = self.bytes().get(self.pos..self.pos + N)?;
        let word = |bytes: &[u8], at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        if N >= 8 {
            // Whole words, then the last eight bytes when a partial word is left (overlapping
            // the last whole word).
            let mut at = 0;
            while at + 8 <= N {
                if word(rest, at)? != word(expected, at)? {
                    return None;
                }
                at += 8;
            }
            if !N.is_multiple_of(8) && word(rest, N - 8)? != word(expected, N - 8)? {
                return None;
            }
        } else if rest != expected {
            return None;
        }
        self.pos += N;
        Some(())
    }

    /// A state or `null` in the host's layout (see [`host_layout`]).
    fn host_state(&mut self) -> Option<Option<State<'a>>> {
        if self.literal(b"null").is_some() {
            return Some(None);
        }
        self.literal(b"{\"entity_id\":")?;
        let entity_id = self.host_string()?;
        self.literal(b",\"state\":")?;
        let state = self.host_string()?;
        self.literal(b",\"attributes\":")?;
        let attributes = self.raw().ok()?;
        self.literal(b",\"last_changed\":")?;
        let last_changed = self.host_string()?;
        self.literal(b",\"last_updated\":")?;
        let last_updated = self.host_string()?;
        self.literal(b",\"context\":")?;
        let context = self.host_context()?;
        self.literal(b"}")?;
        Some(Some(State {
            entity_id,
            state,
            attributes,
            last_changed,
            last_updated,
            context,
        }))
    }

    /// A context in the host's layout: `origin` only when set.
    fn host_context(&mut self) -> Option<Context<'a>> {
        self.literal(b"{\"id\":")?;
        let id = self.host_string()?;
        self.literal(b",\"parent_id\":")?;
        let parent_id = self.host_optional_string()?;
        self.literal(b",\"user_id\":")?;
        let user_id = self.host_optional_string()?;
        let origin = match self.literal(b",\"origin\":") {
            Some(()) => self.host_optional_string()?,
            None => None,
        };
        self.literal(b"}")?;
        Some(Context {
            id,
            parent_id,
            user_id,
            origin,
        })
    }

    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes().get(self.pos).copied()
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Read<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("{:?}", char::from(byte))))
        }
    }

    /// Only whitespace may follow the payload.
    fn end(&mut self) -> Read<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("the end of the payload")),
        }
    }

    /// `null`, consumed; anything else is left for the caller.
    #[inline(always)]
    fn null(&mut self) -> bool {
        self.skip_whitespace();
        if self
            .bytes()
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(b"null"))
        {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    /// `{ "key": value, ... }`, calling `member` with each key, positioned at its value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Read<()>) -> Read<()> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            member(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("',' or '}'")),
            }
        }
    }

    /// The position of the quote closing the string whose contents start at `self.pos`, and
    /// whether the string has escapes. Control characters are refused, as JSON requires.
    #[inline(always)]
    fn string_end(&self) -> Read<(usize, bool)> {
        let bytes = self.bytes();
        let mut i = self.pos;
        let mut escaped = false;
        loop {
            // Eight bytes at a time, up to the first one that needs a look.
            while let Some(chunk) = bytes.get(i..i + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let mask = attention(u64::from_le_bytes(word));
                if mask != 0 {
                    i += (mask.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match bytes.get(i) {
                Some(b'"') => return Ok((i, escaped)),
                Some(b'\\') => {
                    escaped = true;
                    // The escaped byte is never the closing quote; serde_json checks the escape.
                    i += 2;
                }
                Some(0..0x20) => {
                    return Err(Box::new(Malformed {
                        what: "control character in a string".to_owned(),
                        at: i,
                    }));
                }
                Some(_) => i += 1,
                None => {
                    return Err(Box::new(Malformed {
                        what: "unterminated string".to_owned(),
                        at: self.pos,
                    }));
                }
            }
        }
    }

    /// A string, borrowed from the payload unless it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Read<Cow<'a, str>> {
        self.expect(b'"')?;
        self.string_contents()
    }

    /// A string that starts exactly here, in the host's layout (no whitespace to skip).
    #[inline(always)]
    fn host_string(&mut self) -> Option<Cow<'a, str>> {
        if self.bytes().get(self.pos) != Some(&b'"') {
            return None;
        }
        self.pos += 1;
        self.string_contents().ok()
    }

    /// A string or `null` that starts exactly here, in the host's layout.
    #[inline(always)]
    fn host_optional_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.literal(b"null").is_some() {
            Some(None)
        } else {
            self.host_string().map(Some)
        }
    }

    /// The rest of a string whose opening quote was just consumed.
    #[inline(always)]
    fn string_contents(&mut self) -> Read<Cow<'a, str>> {
        let start = self.pos;
        let (end, escaped) = self.string_end()?;
        self.pos = end + 1;
        let text = self.text;
        // Quotes are ASCII, so both ends are character boundaries.
        let Some(inner) = text.get(start..end) else {
            return Err(self.error("a string"));
        };
        if !escaped {
            return Ok(Cow::Borrowed(inner));
        }
        let quoted = text.get(start - 1..=end).unwrap_or(inner);
        serde_json::from_str::<String>(quoted)
            .map(Cow::Owned)
            .map_err(|e| {
                Box::new(Malformed {
                    what: format!("a string: {e}"),
                    at: start - 1,
                })
            })
    }

    /// A string or `null`.
    fn optional_string(&mut self) -> Read<Option<Cow<'a, str>>> {
        if self.null() {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// Any JSON value, unparsed and unchecked: its end is found by matching brackets and
    /// strings, as for a member nobody reads; [`RawJson::checked`] (or parsing it) checks it
    /// when a plugin reads it.
    fn raw(&mut self) -> Read<RawJson<'a>> {
        self.skip_whitespace();
        let start = self.pos;
        self.skip_value()?;
        let text = self.text.get(start..self.pos).unwrap_or_default();
        Ok(RawJson::unchecked(text))
    }

    /// Steps over one value by matching brackets and strings, without checking its contents.
    fn skip_value(&mut self) -> Read<()> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.pos = self.string_end()?.0 + 1;
                Ok(())
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.bytes().get(self.pos) {
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Ok(());
                            }
                        }
                        Some(b'"') => {
                            self.pos += 1;
                            self.pos = self.string_end()?.0;
                        }
                        Some(_) => {}
                        None => return Err(self.error("the end of an object or array")),
                    }
                    self.pos += 1;
                }
            }
            Some(b',' | b'}' | b']' | b':') | None => Err(self.error("a value")),
            Some(_) => {
                // A number or a literal: up to the next delimiter.
                let start = self.pos;
                while let Some(b) = self.bytes().get(self.pos) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.error("a value"));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn context_json(i: usize) -> Value {
        match i % 3 {
            0 => json!({"id": "01HQ0000000000000000000000", "parent_id": null, "user_id": null}),
            1 => {
                json!({"id": "01HQ0000000000000000000001", "parent_id": "01HQ0000000000000000000000",
                        "user_id": "user \"q\" \\ \u{e9}\n", "origin": "motion_lights"})
            }
            _ => json!({"origin": null, "id": "c", "extra": [1, {"a": "}"}]}),
        }
    }

    fn state_json(i: usize, attributes: Value) -> Value {
        let state = ["on", "off \"quoted\"", "caf\u{e9} \u{1F4A1}"][i % 3];
        json!({
            "entity_id": "binary_sensor.hall_motion",
            "state": state,
            "attributes": attributes,
            "last_changed": "2024-03-01T12:00:00.000000+00:00",
            "last_updated": "2024-03-01T12:00:01.000001+00:00",
            "context": context_json(i),
        })
    }

    /// Well-formed payloads of every shape the wire type accepts.
    fn payloads() -> Vec<String> {
        let attributes = [
            json!({}),
            json!({"device_class": "motion", "friendly_name": "Hall \"main\" motion", "n": 12}),
            json!({"nested": {"list": [1, 2.5, -3e2, true, false, null, "]}"], "o": {}}}),
        ];
        let mut out = Vec::new();
        for i in 0..6 {
            let old = if i == 4 {
                Value::Null
            } else {
                state_json(i, attributes[i % 3].clone())
            };
            let new = if i == 5 {
                Value::Null
            } else {
                state_json(i + 1, attributes[(i + 1) % 3].clone())
            };
            let event = json!({
                "entity_id": "binary_sensor.hall_motion",
                "old_state": old,
                "new_state": new,
                "context": context_json(i),
            });
            out.push(event.to_string());
            out.push(serde_json::to_string_pretty(&event).expect("serializes"));
        }
        // Members in another order, unknown ones, absent optional ones, escaped keys.
        out.push(
            r#"{"context":{"id":"x"},"unknown":{"a":[{"b":"\"}"}]},"entity_id":"a.\u0062","new_state":null}"#
                .to_owned(),
        );
        out.push(
            r#" {"entity_id":"a.b","context":{"id":"x","parent_id":null},"old_state":null} "#
                .to_owned(),
        );
        out.push(
            r#"{"\u0065ntity_id":"a.b","context":{"id":"x"},"n":-1.5e3,"t":true,"f":false}"#
                .to_owned(),
        );
        out
    }

    /// Payloads in the host's layout (`homecore-plugins`' event cache writes them so):
    /// escapes, `null` states, set and unset optional context members.
    fn host_payloads() -> Vec<String> {
        let contexts = [
            r#"{"id":"01JDQ3X5Z8W6R4T2Y9V7N3M1K5","parent_id":null,"user_id":null}"#,
            r#"{"id":"c1","parent_id":"01JDQ3X5Z8W6R4T2Y9V7N3M1K5","user_id":"u \"q\" \\","origin":"motion_lights"}"#,
            r#"{"id":"c2","parent_id":null,"user_id":null,"origin":"caf\u00e9"}"#,
        ];
        let attributes = [
            "{}",
            r#"{"device_class":"motion","friendly_name":"Hall \"main\" motion","n":12}"#,
            r#"{"nested":{"list":[1,2.5,-3e2,true,false,null,"]}"],"o":{}}}"#,
        ];
        let state = |i: usize| {
            format!(
                r#"{{"entity_id":"binary_sensor.hall_motion","state":"{}","attributes":{},"last_changed":"2026-12-03T10:00:00.000000+00:00","last_updated":"2026-12-03T10:00:01.123456+00:00","context":{}}}"#,
                ["on", r#"off \"quoted\""#, r"caf\u00e9 \n"][i % 3],
                attributes[i % 3],
                contexts[i % 3],
            )
        };
        (0..6)
            .map(|i| {
                let old = if i == 4 { "null".to_owned() } else { state(i) };
                let new = if i == 5 { "null".to_owned() } else { state(i + 1) };
                format!(
                    r#"{{"entity_id":"binary_sensor.hall_motion","old_state":{old},"new_state":{new},"context":{}}}"#,
                    contexts[(i + 2) % 3]
                )
            })
            .collect()
    }

    #[test]
    fn the_hosts_layout_takes_the_fast_path_with_the_same_result() {
        for text in host_payloads() {
            let reference: StateChangedEvent<'_> =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            let fast =
                host_layout(&text).unwrap_or_else(|| panic!("not the host's layout: {text}"));
            assert!(same(&fast, &reference), "{text}");
            assert!(same(&state_changed(&text).expect("reads"), &reference));
        }
        // Any other layout (here: members sorted, as serde_json without `preserve_order`
        // writes them) is left to the general reader, with the same result.
        for text in host_payloads() {
            let sorted: std::collections::BTreeMap<String, Value> =
                serde_json::from_str(&text).expect("JSON");
            let sorted = serde_json::to_string(&sorted).expect("serializes");
            assert!(host_layout(&sorted).is_none(), "{sorted}");
            let reference: StateChangedEvent<'_> = serde_json::from_str(&sorted).expect("reads");
            assert!(same(&state_changed(&sorted).expect("reads"), &reference));
        }
    }

    #[test]
    fn a_damaged_host_payload_leaves_the_fast_path_and_is_an_error_or_unchecked_attributes() {
        for text in host_payloads() {
            for cut in 0..text.len() {
                let Some(prefix) = text.get(..cut) else {
                    continue;
                };
                assert!(host_layout(prefix).is_none(), "{prefix:?}");
                assert!(state_changed(prefix).is_err(), "{prefix:?}");
            }
            // Trailing bytes, a duplicate member.
            for bad in [
                format!("{text}x"),
                format!(r#"{},"entity_id":"a.b"}}"#, &text[..text.len() - 1]),
            ] {
                assert!(host_layout(&bad).is_none(), "{bad}");
                assert!(state_changed(&bad).is_err(), "{bad}");
            }
            // A malformed attribute value is read unchecked, and reported when read.
            let bad = text.replacen(r#""attributes":{"#, r#""attributes":{"a":tru,"#, 1);
            if bad != text {
                let event = host_layout(&bad).expect("attributes are not checked on the way");
                let states = [event.old_state, event.new_state];
                let damaged = states
                    .iter()
                    .flatten()
                    .find(|s| s.attributes.get().contains("tru,"))
                    .expect("the damaged state");
                assert!(damaged.attributes.checked().is_err(), "{bad}");
            }
            // Whitespace after the payload is well-formed: the general reader takes it.
            let spaced = format!("{text} ");
            assert!(host_layout(&spaced).is_none());
            assert!(state_changed(&spaced).is_ok());
        }
    }

    fn same(a: &StateChangedEvent<'_>, b: &StateChangedEvent<'_>) -> bool {
        serde_json::to_string(a).expect("serializes")
            == serde_json::to_string(b).expect("serializes")
    }

    #[test]
    fn well_formed_payloads_read_exactly_as_serde_json_reads_them() {
        for text in payloads() {
            let reference: StateChangedEvent<'_> =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            let read = state_changed(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert!(same(&read, &reference), "{text}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = payloads().remove(0);
        let event = state_changed(&text).expect("reads");
        assert!(matches!(event.entity_id, Cow::Borrowed(_)));
        let text = payloads().swap_remove(2);
        let escaped = state_changed(&text).expect("reads");
        let state = escaped.old_state.expect("present");
        assert!(matches!(state.state, Cow::Owned(_)));
        assert_eq!(state.state, "off \"quoted\"");
    }

    #[test]
    fn every_truncation_and_every_malformed_payload_is_an_error() {
        for text in payloads() {
            for cut in 0..text.len() {
                let Some(prefix) = text.get(..cut) else {
                    continue;
                };
                // Whitespace after the closing brace is all a cut can leave well-formed.
                if prefix.trim_end() == text.trim_end() {
                    continue;
                }
                assert!(state_changed(prefix).is_err(), "{prefix:?}");
            }
        }
        for bad in [
            "",
            "null",
            "[]",
            "{",
            r#"{"entity_id":"a.b"}"#,
            r#"{"entity_id":"a.b","context":{}}"#,
            r#"{"entity_id":"a.b","context":{"id":"x"}} x"#,
            r#"{"entity_id":"a.b","entity_id":"a.c","context":{"id":"x"}}"#,
            r#"{"entity_id":"a.b","context":{"id":"x"},"new_state":{"state":"on"}}"#,
            r#"{"entity_id":"a.b","context":{"id":"x"},"new_state":7}"#,
            r#"{"entity_id":1,"context":{"id":"x"}}"#,
            "{\"entity_id\":\"a\u{1}b\",\"context\":{\"id\":\"x\"}}",
            r#"{"entity_id":"a\qb","context":{"id":"x"}}"#,
            r#"{"entity_id":"a.b","context":{"id":"x"},"unknown":}"#,
            r#"{"entity_id":"a.b","context":{"id":"x"},}"#,
            r#"{"entity_id":"a.b" "context":{"id":"x"}}"#,
        ] {
            assert!(state_changed(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<StateChangedEvent<'_>>(bad).is_err(),
                "{bad}"
            );
        }
        // Malformed attributes are an error when read (serde_json refuses them at once).
        let bad = r#"{"entity_id":"a.b","context":{"id":"x"},"old_state":{"entity_id":"a.b","state":"on","attributes":{"a":tru},"last_changed":"t","last_updated":"t","context":{"id":"x"}}}"#;
        assert!(serde_json::from_str::<StateChangedEvent<'_>>(bad).is_err());
        let event = state_changed(bad).expect("attributes are read unchecked");
        let old = event.old_state.expect("present");
        assert_eq!(old.attributes.get(), r#"{"a":tru}"#);
        assert!(old.attributes.checked().is_err());
        // Unbalanced attributes are not a value at all: an error at once.
        let cut = r#"{"entity_id":"a.b","context":{"id":"x"},"old_state":{"entity_id":"a.b","state":"on","attributes":{"a":[1},"last_changed":"t","last_updated":"t","context":{"id":"x"}}}"#;
        assert!(state_changed(cut).is_err());
    }

    #[test]
    fn errors_name_what_was_expected_and_where() {
        let err = state_changed(r#"{"entity_id":"a.b" "context":{}}"#).expect_err("malformed");
        assert_eq!(
            err.to_string(),
            "expected ',' or '}', found '\"' at byte 19"
        );
        let err = state_changed(r#"{"context":{"id":"x"}}"#).expect_err("incomplete");
        assert_eq!(
            err.to_string(),
            "expected member entity_id, found the end at byte 22"
        );
    }

    #[test]
    fn the_word_scan_finds_the_first_quote_backslash_or_control_character() {
        let first = |s: &[u8; 8]| match attention(u64::from_le_bytes(*s)) {
            0 => None,
            mask => Some(mask.trailing_zeros() / 8),
        };
        assert_eq!(first(b"abcdefgh"), None);
        assert_eq!(first(b"\x7f\x80\xff\xe9 ~!#"), None);
        for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for at in 0..8 {
                let mut bytes = *b"abcdefgh";
                bytes[at] = special;
                assert_eq!(
                    first(&bytes),
                    u32::try_from(at).ok(),
                    "{special:#x} at {at}"
                );
                // A second special byte later never hides the first one.
                bytes[7] = 0;
                assert_eq!(
                    first(&bytes),
                    u32::try_from(at).ok(),
                    "{special:#x} at {at}"
                );
            }
        }
    }

    /// Property-based fuzzing of the reader (issue 14 §8; docs/fuzzing.md). Cases per
    /// property: `PROPTEST_CASES` (default 256).
    mod fuzz {
        use homecore_fuzz_kit::{Edits, apply, config};
        use proptest::prelude::*;

        use super::*;

        /// Never a panic; and whenever serde_json reads the text as the wire type, the reader
        /// reads it too, with the same result.
        fn agrees_with_serde(text: &str) -> Result<(), TestCaseError> {
            let read = state_changed(text);
            if let Err(err) = &read {
                prop_assert!(!err.to_string().is_empty());
            }
            if let Ok(reference) = serde_json::from_str::<StateChangedEvent<'_>>(text) {
                let read = read.map_err(|e| {
                    TestCaseError::fail(format!("serde reads {text:?}, the reader says {e}"))
                })?;
                prop_assert!(same(&read, &reference), "{text:?}");
            }
            Ok(())
        }

        fn samples() -> Vec<String> {
            let mut all = payloads();
            all.extend(host_payloads());
            all
        }

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                any::<String>().prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(any::<String>(), inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn context() -> impl Strategy<Value = Value> {
            (
                any::<String>(),
                proptest::option::of(any::<String>()),
                proptest::option::of(any::<String>()),
                proptest::option::of(any::<String>()),
            )
                .prop_map(|(id, parent, user, origin)| {
                    let mut c = json!({"id": id, "parent_id": parent, "user_id": user});
                    if let Some(origin) = origin {
                        c["origin"] = Value::String(origin);
                    }
                    c
                })
        }

        fn state() -> impl Strategy<Value = Value> {
            (
                any::<String>(),
                any::<String>(),
                prop::collection::btree_map(any::<String>(), json_value(), 0..4),
                any::<String>(),
                context(),
            )
                .prop_map(|(id, state, attributes, at, context)| {
                    let attributes: serde_json::Map<String, Value> =
                        attributes.into_iter().collect();
                    json!({"entity_id": id, "state": state, "attributes": attributes,
                           "last_changed": at, "last_updated": at, "context": context})
                })
        }

        fn event() -> impl Strategy<Value = Value> {
            (
                any::<String>(),
                proptest::option::of(state()),
                proptest::option::of(state()),
                context(),
            )
                .prop_map(|(id, old, new, context)| {
                    json!({"entity_id": id, "old_state": old, "new_state": new,
                           "context": context})
                })
        }

        /// Mutations of a valid sample (homecore_fuzz_kit), inserting this format's own bytes.
        fn edits() -> impl Strategy<Value = Vec<homecore_fuzz_kit::Edit>> {
            Edits::default()
                .inserting(b"{}[]\",:\\ 0an-.tfeu")
                .strategy()
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn fuzz_event_reader_arbitrary_text(text in any::<String>()) {
                agrees_with_serde(&text)?;
            }

            #[test]
            fn fuzz_event_reader_arbitrary_json_like_text(
                text in r#"[{}\[\]":,a-z0-9\\ .-]{0,80}"#
            ) {
                agrees_with_serde(&text)?;
            }

            #[test]
            fn fuzz_event_reader_mutated_valid_payloads(
                which in any::<prop::sample::Index>(),
                edits in edits(),
            ) {
                let samples = samples();
                let sample = which.get(&samples);
                let bytes = apply(sample.as_bytes(), &edits);
                agrees_with_serde(&String::from_utf8_lossy(&bytes))?;
            }

            #[test]
            fn fuzz_event_reader_valid_events_read_as_serde_reads_them(event in event()) {
                // Compact, as the host writes (its own layout: the fast path), and pretty.
                let compact = serde_json::to_string(&event).expect("serializes");
                let read = state_changed(&compact);
                prop_assert!(read.is_ok(), "{compact}: {:?}", read.err());
                agrees_with_serde(&compact)?;
                agrees_with_serde(&serde_json::to_string_pretty(&event).expect("serializes"))?;
                // In the host's layout (the wire type's own member order): the fast path.
                let wire: StateChangedEvent<'_> =
                    serde_json::from_str(&compact).expect("the wire shape");
                let host = serde_json::to_string(&wire).expect("serializes");
                let fast = host_layout(&host);
                prop_assert!(fast.is_some(), "not the host's layout: {host}");
                prop_assert!(same(&fast.expect("checked"), &wire), "{host}");
            }
        }
    }
}
