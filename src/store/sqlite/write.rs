//! A plan's rows on SQLite: bound straight from the plan into prepared multi-row statements
//! on the session's own connection (`bulk.rs`), with audit ids drawn under the write lock.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::bulk::{ChunkedInsert, Shared};
use crate::domain::{fingerprint, DisplayName, Oid, RunId};
use crate::plan::{Attributes, ClaimChange, MemberChange, Plan};
use crate::store::apply::{claim_word, previous, recorded, Arg, RunRows, RunStamp};
use crate::store::words::{AuditAction, MemberEffect};
use crate::store::StoreError;

/// A run's writes on the session's connection, done when called: the future each returns is
/// ready on its first poll (`apply::settle`).
pub(in crate::store) struct SqliteRows<'c>(pub(in crate::store) &'c Connection);

impl SqliteRows<'_> {
    fn bound(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<rusqlite::Statement<'_>, StoreError> {
        let mut statement = self.0.prepare(sql)?;
        for (index, arg) in (1..).zip(args) {
            match arg {
                Arg::Int(value) => statement.raw_bind_parameter(index, value)?,
                Arg::Text(value) => statement.raw_bind_parameter(index, value)?,
                Arg::Blob(value) => statement.raw_bind_parameter(index, value)?,
            }
        }
        Ok(statement)
    }
}

impl RunRows for SqliteRows<'_> {
    async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let changed = self.bound(sql, args)?.raw_execute()?;
        Ok(changed as u64)
    }

    async fn returning_id(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<i64>, StoreError> {
        let mut statement = self.bound(sql, args)?;
        let mut returned = statement.raw_query();
        let id = match returned.next()? {
            Some(row) => Some(row.get(0)?),
            None => None,
        };
        Ok(id)
    }

    async fn members(&mut self, stamp: RunStamp, plan: &Plan) -> Result<Option<(i64, i64)>, StoreError> {
        members(self.0, stamp, plan)
    }

    async fn planned_changes(&mut self, run_id: RunId, plan: &Plan) -> Result<(), StoreError> {
        planned_changes(self.0, run_id, plan)
    }
}

/// The planned changes of a run that is kept for `runs show` and `runs approve`, by position.
fn planned_changes(connection: &Connection, run_id: RunId, plan: &Plan) -> Result<(), StoreError> {
    let mut insert = ChunkedInsert::prepare(
        connection,
        "planned_changes",
        "seq, oid, claim, member, email, display_name, previous_email, previous_display_name",
        &[("run_id", Shared::Int(run_id.0))],
        plan.changes.len(),
    )?;
    for (seq, change) in (0_i64..).zip(&plan.changes) {
        let (previous_email, previous_name) = previous(change);
        let attributes = recorded(change)?;
        insert.push(|row| {
            row.value(seq)?
                .value(&change.oid.as_bytes()[..])?
                .value(claim_word(change.claim))?
                .value(<&str>::from(MemberEffect::from(&change.member)))?
                .value(attributes.email.as_str())?
                .value(attributes.display_name.as_deref())?
                .value(previous_email)?
                .value(previous_name)?;
            Ok::<_, StoreError>(())
        })?;
    }
    insert.finish()
}

/// The claim, member and audit rows of one plan, in plan (oid) order, so each B-tree
/// is appended to rather than split. Added rows go in multi-row chunks; updates and removals,
/// rare and keyed, one statement each. Event ids are assigned here (the session holds the
/// write lock, so nobody else takes ids meanwhile); returns the range written, if any.
fn members(connection: &Connection, stamp: RunStamp, plan: &Plan) -> Result<Option<(i64, i64)>, StoreError> {
    let RunStamp { teamspace_id, source_id, run_id, now } = stamp;
    let (run_id, now) = (run_id.0, now.0);
    let gained = plan.changes.iter().filter(|c| c.claim == ClaimChange::Gain).count();
    let added = plan.changes.iter().filter(|c| c.member == MemberChange::Add).count();
    let events = plan.changes.iter().filter(|c| c.member != MemberChange::Unchanged).count();

    let mut insert_claims = ChunkedInsert::prepare(
        connection,
        "claims",
        "oid",
        &[
            ("teamspace_id", Shared::Int(teamspace_id)),
            ("source_id", Shared::Int(source_id)),
            ("created_at", Shared::Int(now)),
        ],
        gained,
    )?;
    let mut delete_claim =
        connection.prepare("DELETE FROM claims WHERE teamspace_id = ?1 AND oid = ?2 AND source_id = ?3")?;
    let mut insert_members = ChunkedInsert::prepare(
        connection,
        "members",
        "oid, email, display_name, email_hash, name_hash",
        &[
            ("teamspace_id", Shared::Int(teamspace_id)),
            ("attrs_source_id", Shared::Int(source_id)),
            ("created_at", Shared::Int(now)),
            ("updated_at", Shared::Int(now)),
        ],
        added,
    )?;
    let mut update_member = connection.prepare(
        "UPDATE members SET email = ?3, display_name = ?4, email_hash = ?5, name_hash = ?6, attrs_source_id = ?7, \
         updated_at = ?8 WHERE teamspace_id = ?1 AND oid = ?2",
    )?;
    let mut delete_member = connection.prepare("DELETE FROM members WHERE teamspace_id = ?1 AND oid = ?2")?;
    let mut insert_events = ChunkedInsert::prepare(
        connection,
        "audit_events",
        "id, action, oid, email, display_name, previous_email, previous_display_name",
        &[
            ("teamspace_id", Shared::Int(teamspace_id)),
            ("run_id", Shared::Int(run_id)),
            ("source_id", Shared::Int(source_id)),
            ("role", Shared::Text("developer")),
            ("occurred_at", Shared::Int(now)),
        ],
        events,
    )?;
    let first_event = next_event_id(connection)?;
    let mut next_event = first_event;

    for (index, change) in plan.changes.iter().enumerate() {
        if let Some(ahead) = plan.changes.get(index + TOUCH_AHEAD).and_then(|c| c.attributes.as_ref()) {
            touch(ahead.email.as_str());
            if let Some(name) = ahead.display_name.as_deref() {
                touch(name);
            }
        }
        let oid = &change.oid.as_bytes()[..];
        match change.claim {
            ClaimChange::Gain => insert_claims.push(|row| {
                row.value(oid)?;
                Ok::<_, StoreError>(())
            })?,
            ClaimChange::Drop => {
                delete_claim.execute(params![teamspace_id, oid, source_id])?;
            }
            ClaimChange::Keep => {}
        }
        if change.member == MemberChange::Unchanged {
            continue;
        }
        let attributes = recorded(change)?;
        let email = attributes.email.as_str();
        let name = attributes.display_name.as_deref();
        let action = match change.member {
            MemberChange::Add => {
                insert_members.push(|row| {
                    row.value(oid)?
                        .value(email)?
                        .value(name)?
                        .value(fingerprint::email(&attributes.email))?
                        .value(name.map(fingerprint::name))?;
                    Ok::<_, StoreError>(())
                })?;
                AuditAction::Added
            }
            MemberChange::Update { .. } => {
                update_member.execute(params![
                    teamspace_id,
                    oid,
                    email,
                    name,
                    fingerprint::email(&attributes.email),
                    name.map(fingerprint::name),
                    source_id,
                    now
                ])?;
                AuditAction::Updated
            }
            // `Unchanged` was skipped above.
            MemberChange::Remove | MemberChange::Unchanged => {
                delete_member.execute(params![teamspace_id, oid])?;
                AuditAction::Removed
            }
        };
        let (previous_email, previous_name) = previous(change);
        insert_events.push(|row| {
            row.value(next_event)?
                .value(<&str>::from(action))?
                .value(oid)?
                .value(email)?
                .value(name)?
                .value(previous_email)?
                .value(previous_name)?;
            Ok::<_, StoreError>(())
        })?;
        next_event += 1;
    }
    insert_claims.finish()?;
    insert_members.finish()?;
    insert_events.finish()?;
    if next_event == first_event {
        return Ok(None);
    }
    Ok(Some((first_event, next_event - 1)))
}

/// The first id for this run's audit events, which take the ids after it in order. Safe only
/// because the caller holds SQLite's write lock, so no other writer draws ids until it commits;
/// an engine with concurrent writers draws them from a sequence instead, and nothing outside
/// this write path may assume one run's ids are contiguous.
fn next_event_id(connection: &Connection) -> Result<i64, StoreError> {
    Ok(connection.query_row("SELECT ifnull(max(id), 0) + 1 FROM audit_events", [], |row| row.get(0))?)
}

/// The stored email and display name of each of `oids`, by key look-up: a replace that drops
/// a million members records each one's last attributes in its audit event.
pub(in crate::store) fn stored_attributes(
    connection: &Connection,
    teamspace_id: i64,
    oids: &[Oid],
) -> Result<HashMap<Oid, Attributes>, StoreError> {
    let mut select =
        connection.prepare("SELECT email, display_name FROM members WHERE teamspace_id = ?1 AND oid = ?2")?;
    let mut stored = HashMap::with_capacity(oids.len());
    for &oid in oids {
        let row = select
            .query_row(params![teamspace_id, &oid.to_bytes()[..]], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
            })
            .optional()?;
        if let Some((email, display_name)) = row {
            let email = email.parse().map_err(|e| StoreError::corrupt("members.email", e))?;
            stored.insert(oid, Attributes { email, display_name: display_name.map(DisplayName::from_stored) });
        }
    }
    Ok(stored)
}

/// How many changes ahead `members` touches the text it will bind. In plan (oid) order, each
/// change's strings sit wherever the source's reader allocated them, so binding them waited on
/// memory for every row: 10% of a million-member import, in SQLite copying the text. Touching
/// them a few rows early lets the loads of several rows overlap (BENCHMARKS.md).
const TOUCH_AHEAD: usize = 16;

/// Loads the first byte of `text`, so its cache line is on its way when it is bound.
fn touch(text: &str) {
    std::hint::black_box(text.as_bytes().first().copied());
}
