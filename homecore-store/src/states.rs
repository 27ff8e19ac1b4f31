//! Entity states on disk: one row per entity (its latest state), and restoring them at start.

use homecore::chrono::{DateTime, SecondsFormat, Utc};
use homecore::{Attributes, Context, EntityId, Home, State};
use rusqlite::{Connection, params};

use crate::error::capped;
use crate::{Store, StoreError};

/// What [`Store::restore`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RestoreReport {
    /// States put back into the state machine, with their stored timestamps.
    pub restored: usize,
    /// Stored states skipped because the entity already had a (newer, live) state.
    pub kept_live: usize,
}

impl Store {
    /// Every stored entity state, as last recorded.
    ///
    /// # Errors
    /// [`StoreError::BadRow`] for a row that cannot be read back (the row is left in place),
    /// [`StoreError::Sqlite`] for a read failure.
    pub fn load_states(&self) -> Result<Vec<State>, StoreError> {
        let conn = self.conn();
        let rows = (|| {
            let mut stmt = conn.prepare(
                "SELECT entity_id, state, attributes, last_changed, last_updated, context \
                 FROM states ORDER BY entity_id",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(StoredState {
                    entity_id: row.get(0)?,
                    state: row.get(1)?,
                    attributes: row.get(2)?,
                    last_changed: row.get(3)?,
                    last_updated: row.get(4)?,
                    context: row.get(5)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.error("reading states", e))?;
        drop(conn);
        rows.into_iter()
            .map(|row| {
                let key = capped(&row.entity_id);
                row.decode().map_err(|reason| StoreError::BadRow {
                    path: self.path().to_path_buf(),
                    table: "states",
                    key,
                    reason,
                })
            })
            .collect()
    }

    /// Home Assistant's restore-state at start: puts every stored state back into
    /// `home.states` as it was recorded (state, attributes, `last_changed`, `last_updated`,
    /// context), before plugins start, so automations and the API see the last known state
    /// until a plugin writes a fresh one. An entity that already has a state keeps it.
    /// Restored states carry no `restored` marker (see docs/adr/0010-persistence.md).
    ///
    /// # Errors
    /// As [`Store::load_states`]; nothing is restored then.
    pub fn restore(&self, home: &Home) -> Result<RestoreReport, StoreError> {
        let mut report = RestoreReport::default();
        for state in self.load_states()? {
            if home.states.restore(state) {
                report.restored += 1;
            } else {
                report.kept_live += 1;
            }
        }
        tracing::info!(
            path = %self.path().display(),
            restored = report.restored,
            kept_live = report.kept_live,
            "entity states restored"
        );
        Ok(report)
    }
}

/// A `states` row as read, before validation.
struct StoredState {
    entity_id: String,
    state: String,
    attributes: String,
    last_changed: String,
    last_updated: String,
    context: String,
}

impl StoredState {
    fn decode(self) -> Result<State, String> {
        let entity_id = EntityId::new(&self.entity_id).map_err(|e| e.to_string())?;
        let attributes: serde_json::Value = serde_json::from_str(&self.attributes)
            .map_err(|e| format!("attributes are not JSON: {e}"))?;
        let attributes = Attributes::try_from(attributes).map_err(|e| e.to_string())?;
        let context: Context = serde_json::from_str(&self.context)
            .map_err(|e| format!("context is not a context: {e}"))?;
        State::restore(
            entity_id,
            &self.state,
            attributes,
            timestamp(&self.last_changed, "last_changed")?,
            timestamp(&self.last_updated, "last_updated")?,
            context,
        )
        .map_err(|e| e.to_string())
    }
}

/// Timestamps are stored as RFC 3339 text in UTC with every stored digit (nanoseconds when
/// the clock gave them), so a restored state compares equal to the recorded one.
fn timestamp(text: &str, column: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{column} {:?} is not a timestamp: {e}", capped(text)))
}

fn stored_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Writes `state` as its entity's row.
pub(crate) fn upsert(conn: &Connection, state: &State) -> rusqlite::Result<()> {
    let attributes =
        serde_json::to_string(state.attributes().as_map()).expect("a JSON map always serializes");
    let context = serde_json::to_string(state.context()).expect("a context always serializes");
    conn.prepare_cached(
        "INSERT INTO states (entity_id, state, attributes, last_changed, last_updated, context) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (entity_id) DO UPDATE SET state = excluded.state, \
         attributes = excluded.attributes, last_changed = excluded.last_changed, \
         last_updated = excluded.last_updated, context = excluded.context",
    )?
    .execute(params![
        state.entity_id().as_str(),
        state.state(),
        attributes,
        stored_timestamp(state.last_changed()),
        stored_timestamp(state.last_updated()),
        context,
    ])?;
    Ok(())
}

/// Deletes an entity's row.
pub(crate) fn delete(conn: &Connection, entity_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM states WHERE entity_id = ?1")?
        .execute([entity_id])?;
    Ok(())
}

/// The entity ids that have a row.
pub(crate) fn stored_ids(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT entity_id FROM states")?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn rows_round_trip_with_timestamps_and_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("home.db")).expect("opens");
        let ctx = Context::for_user("alice").child(Some("motion_lights".into()));
        let attrs = Attributes::try_from(json!({"brightness": 7, "nested": {"a": [1, 2]}}))
            .expect("object");
        let state = State::restore(
            EntityId::new("light.hall").expect("valid"),
            "on",
            attrs,
            at("2024-03-01T12:00:00.123456Z"),
            at("2024-03-01T12:05:00.000000789Z"),
            ctx.clone(),
        )
        .expect("valid");
        upsert(&store.conn(), &state).expect("writes");
        let loaded = store.load_states().expect("reads");
        assert_eq!(loaded.len(), 1);
        let got = &loaded[0];
        assert_eq!(got.entity_id(), state.entity_id());
        assert_eq!(got.attributes(), state.attributes());
        assert_eq!(got.last_changed(), state.last_changed());
        assert_eq!(got.last_updated(), state.last_updated());
        assert_eq!(got.context().id, ctx.id);
        assert_eq!(got.context().parent_id, ctx.parent_id);
        assert_eq!(got.context().origin, ctx.origin);
        delete(&store.conn(), "light.hall").expect("deletes");
        assert!(store.load_states().expect("reads").is_empty());
    }

    #[test]
    fn a_bad_row_is_reported_and_left_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("home.db")).expect("opens");
        store
            .conn()
            .execute(
                "INSERT INTO states VALUES ('not an id', 'on', '{}', '', '', '{}')",
                [],
            )
            .expect("raw insert");
        let err = store.load_states().expect_err("bad row");
        assert!(
            matches!(&err, StoreError::BadRow { table: "states", key, .. } if key == "not an id"),
            "{err:?}"
        );
        assert_eq!(stored_ids(&store.conn()).expect("reads"), ["not an id"]);
        let home = Home::new();
        assert!(store.restore(&home).is_err());
        assert!(home.states.is_empty(), "nothing restored from a bad table");
    }

    #[test]
    fn attributes_that_are_not_an_object_are_a_bad_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("home.db")).expect("opens");
        store
            .conn()
            .execute(
                "INSERT INTO states VALUES ('light.a', 'on', '[1]', '', '', '{}')",
                [],
            )
            .expect("raw insert");
        let err = store.load_states().expect_err("bad row");
        assert!(
            matches!(&err, StoreError::BadRow { reason, .. } if reason.contains("array")),
            "{err:?}"
        );
    }
}
