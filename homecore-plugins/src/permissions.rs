//! What a plugin may do: declared in its manifest, granted by the operator.

use homecore::{EntityGlob, EntityId, wildcard_match};
use serde::{Deserialize, Serialize};

/// A pattern over dotted names such as service names (`light.turn_on`, `light.*`, `*`) or
/// event types (`doorbell_pressed`, `motion_*`): `*` matches any run, `?` one character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NamePattern(Box<str>);

/// Why a name pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NamePatternError {
    /// Empty pattern.
    #[error("pattern is empty")]
    Empty,
    /// Longer than 255 bytes.
    #[error("pattern is {len} bytes long, the limit is 255")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A character outside `[a-z0-9_.*?]`.
    #[error("{pattern:?} contains {found:?}; allowed are a-z, 0-9, '_', '.', '*' and '?'")]
    InvalidChar {
        /// The pattern.
        pattern: String,
        /// The offending character.
        found: char,
    },
}

impl NamePattern {
    /// Validates a pattern.
    ///
    /// # Errors
    /// A [`NamePatternError`] naming the problem.
    pub fn new(pattern: &str) -> Result<Self, NamePatternError> {
        if pattern.is_empty() {
            return Err(NamePatternError::Empty);
        }
        if pattern.len() > 255 {
            return Err(NamePatternError::TooLong { len: pattern.len() });
        }
        if let Some(found) = pattern
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '*' | '?'))
        {
            return Err(NamePatternError::InvalidChar {
                pattern: pattern.to_owned(),
                found,
            });
        }
        Ok(Self(pattern.into()))
    }

    /// Whether `name` matches.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        wildcard_match(&self.0, name)
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether, as an event-type pattern, everything it matches is an event type the core
    /// owns ([`homecore::is_core_event_type`]): `state_changed`, `homeassistant_*`. Such a
    /// pattern can never grant anything, so a manifest that lists it is refused.
    #[must_use]
    pub fn only_core_events(&self) -> bool {
        let literal_end = self.0.find(['*', '?']).unwrap_or(self.0.len());
        if literal_end == self.0.len() {
            return homecore::is_core_event_type(&self.0);
        }
        let literal = &self.0[..literal_end];
        homecore::CORE_EVENT_PREFIXES
            .iter()
            .any(|p| literal.starts_with(p))
    }
}

impl TryFrom<String> for NamePattern {
    type Error = NamePatternError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<NamePattern> for String {
    fn from(p: NamePattern) -> Self {
        p.0.into()
    }
}

/// A set of permissions, as the `homecore.permissions` section of a manifest or an operator's
/// grant. Everything is denied unless listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Permissions {
    /// Entities whose state may be read and subscribed to.
    pub states_read: Vec<EntityGlob>,
    /// Entities whose state may be written or removed.
    pub states_write: Vec<EntityGlob>,
    /// Services that may be called (`light.turn_on`, `light.*`).
    pub services: Vec<NamePattern>,
    /// Event types that may be fired and listened to. Event types the core owns
    /// ([`homecore::is_core_event_type`]: `state_changed`, `call_service`, `homeassistant_*`, …)
    /// are never matched, whatever the pattern: only the core makes them.
    pub events: Vec<NamePattern>,
    /// Whether plugin-scoped key-value storage may be used.
    pub storage: bool,
}

impl Permissions {
    /// Permissions that allow everything (for trusted first-party plugins and tests).
    #[must_use]
    pub fn all() -> Self {
        let any = EntityGlob::new("*").expect("'*' is a valid glob");
        let any_name = NamePattern::new("*").expect("'*' is a valid pattern");
        Self {
            states_read: vec![any.clone()],
            states_write: vec![any],
            services: vec![any_name.clone()],
            events: vec![any_name],
            storage: true,
        }
    }

    /// Whether `id` may be read.
    #[must_use]
    pub fn may_read(&self, id: &EntityId) -> bool {
        self.states_read.iter().any(|g| g.matches(id))
    }

    /// Whether every entity `glob` matches may be read (for subscriptions).
    #[must_use]
    pub fn may_read_all_of(&self, glob: &EntityGlob) -> bool {
        self.states_read.iter().any(|g| g.covers(glob))
    }

    /// Whether `id` may be written.
    #[must_use]
    pub fn may_write(&self, id: &EntityId) -> bool {
        self.states_write.iter().any(|g| g.matches(id))
    }

    /// Whether `domain.service` may be called.
    #[must_use]
    pub fn may_call(&self, domain: &str, service: &str) -> bool {
        // Match without allocating "domain.service": a pattern's dot splits it in two.
        self.services
            .iter()
            .any(|p| match p.as_str().split_once('.') {
                Some((d, s)) => wildcard_match(d, domain) && wildcard_match(s, service),
                None => p.as_str() == "*",
            })
    }

    /// Whether events of `event_type` may be fired (or listened to): never a type the core
    /// owns.
    #[must_use]
    pub fn may_fire(&self, event_type: &str) -> bool {
        !homecore::is_core_event_type(event_type)
            && self.events.iter().any(|p| p.matches(event_type))
    }
}

/// What a plugin is allowed: its manifest's declaration intersected with the operator's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    declared: Permissions,
    granted: Option<Permissions>,
}

impl Grant {
    /// The declared permissions, limited by `granted` (`None`: the operator grants everything
    /// declared, the default for compiled-in plugins).
    #[must_use]
    pub fn new(declared: Permissions, granted: Option<Permissions>) -> Self {
        Self { declared, granted }
    }

    fn both(&self, check: impl Fn(&Permissions) -> bool) -> bool {
        check(&self.declared) && self.granted.as_ref().is_none_or(&check)
    }

    /// Whether `id` may be read.
    #[must_use]
    pub fn may_read(&self, id: &EntityId) -> bool {
        self.both(|p| p.may_read(id))
    }

    /// Whether every entity matching `glob` may be read.
    #[must_use]
    pub fn may_read_all_of(&self, glob: &EntityGlob) -> bool {
        self.both(|p| p.may_read_all_of(glob))
    }

    /// Whether `id` may be written.
    #[must_use]
    pub fn may_write(&self, id: &EntityId) -> bool {
        self.both(|p| p.may_write(id))
    }

    /// Whether `domain.service` may be called.
    #[must_use]
    pub fn may_call(&self, domain: &str, service: &str) -> bool {
        self.both(|p| p.may_call(domain, service))
    }

    /// Whether `event_type` may be fired.
    #[must_use]
    pub fn may_fire(&self, event_type: &str) -> bool {
        self.both(|p| p.may_fire(event_type))
    }

    /// Whether storage may be used.
    #[must_use]
    pub fn may_store(&self) -> bool {
        self.both(|p| p.storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(json: serde_json::Value) -> Permissions {
        serde_json::from_value(json).expect("valid permissions")
    }

    fn id(s: &str) -> EntityId {
        s.parse().expect("valid")
    }

    #[test]
    fn declared_permissions_allow_only_what_is_listed() {
        let p = perms(serde_json::json!({
            "states_read": ["binary_sensor.*_motion"],
            "states_write": ["light.*", "sensor.*_activations"],
            "services": ["light.turn_*"],
            "events": ["motion_*"],
        }));
        assert!(p.may_read(&id("binary_sensor.hall_motion")));
        assert!(!p.may_read(&id("lock.front")));
        assert!(p.may_write(&id("light.hall")));
        assert!(!p.may_write(&id("lock.front")));
        assert!(p.may_call("light", "turn_on"));
        assert!(!p.may_call("lock", "unlock"));
        assert!(p.may_fire("motion_cleared"));
        assert!(!p.may_fire("doorbell"));
        assert!(!p.storage);
    }

    #[test]
    fn grant_is_the_intersection() {
        let declared = Permissions::all();
        let granted = perms(serde_json::json!({"states_write": ["light.*"], "storage": true}));
        let g = Grant::new(declared, Some(granted));
        assert!(g.may_write(&id("light.hall")));
        assert!(!g.may_write(&id("lock.front")), "declared but not granted");
        assert!(!g.may_read(&id("light.hall")));
        assert!(g.may_store());
        let g = Grant::new(Permissions::default(), Some(Permissions::all()));
        assert!(!g.may_write(&id("light.hall")), "granted but not declared");
    }

    #[test]
    fn patterns_reject_bad_text() {
        assert!(NamePattern::new("light.turn_on").is_ok());
        assert_eq!(NamePattern::new(""), Err(NamePatternError::Empty));
        assert!(matches!(
            NamePattern::new("Light"),
            Err(NamePatternError::InvalidChar { found: 'L', .. })
        ));
        assert!(
            serde_json::from_value::<Permissions>(serde_json::json!({"states_read": ["light..x"]}))
                .is_err()
        );
        assert!(serde_json::from_value::<Permissions>(serde_json::json!({"bogus": 1})).is_err());
    }

    #[test]
    fn no_pattern_grants_an_event_type_the_core_owns() {
        let everything = Permissions::all();
        for core in homecore::CORE_EVENT_TYPES {
            assert!(!everything.may_fire(core), "{core}");
        }
        for core in [
            "homeassistant_start",
            "homecore_reloaded",
            "entity_registry_updated",
        ] {
            assert!(!everything.may_fire(core), "{core}");
            let literal = Permissions {
                events: vec![NamePattern::new(core).expect("valid")],
                ..Permissions::default()
            };
            assert!(!literal.may_fire(core), "{core}");
        }
        assert!(everything.may_fire("motion_detected"));
        assert!(everything.may_fire("state_changed_by_me"));
    }

    #[test]
    fn patterns_that_only_match_core_events_are_recognised() {
        for only in [
            "state_changed",
            "call_service",
            "homeassistant_*",
            "homecore_?",
            "device_registry_updated",
        ] {
            assert!(
                NamePattern::new(only).expect("valid").only_core_events(),
                "{only}"
            );
        }
        for mixed in ["*", "state_*", "motion_*", "doorbell", "home*"] {
            assert!(
                !NamePattern::new(mixed).expect("valid").only_core_events(),
                "{mixed}"
            );
        }
    }
}
