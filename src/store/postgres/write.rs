//! A plan's rows on PostgreSQL, [`ARRAY_CHUNK_ROWS`] plan rows a round, so a million-member
//! import is a few dozen round trips and never holds a million-element array. A round's rows
//! are one statement ([`WRITE_ROUND`]) fed whole columns as arrays (`UNNEST`), so a SCIM
//! batch's rows are one round trip; a large round streams its new rows with `COPY` instead
//! ([`COPY_FROM_ROWS`]). Audit ids come from the `audit_event_ids` sequence, which replicas
//! writing at once never share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{Postgres, Transaction};
use tokio::sync::OnceCell;

use super::copy::CopyRows;
use crate::domain::{fingerprint, DisplayName, Oid, RunId};
use crate::plan::{Attributes, Change, ClaimChange, MemberChange, Plan};
use crate::store::apply::{claim_word, previous, recorded, Arg, RunRows, RunStamp};
use crate::store::words::{AuditAction, MemberEffect};
use crate::store::StoreError;

type PgTx = Transaction<'static, Postgres>;

/// A run's writes in the session's transaction.
pub(in crate::store) struct PostgresRows<'t>(pub(in crate::store) &'t mut PgTx);

fn bound<'q>(sql: &'static str, args: &'q [Arg<'q>]) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    args.iter().fold(sqlx::query(sql), |query, arg| match arg {
        Arg::Int(value) => query.bind(*value),
        Arg::Text(value) => query.bind(*value),
        Arg::Blob(value) => query.bind(*value),
    })
}

impl RunRows for PostgresRows<'_> {
    async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        Ok(bound(sql, args).execute(&mut **self.0).await?.rows_affected())
    }

    async fn returning_id(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<i64>, StoreError> {
        let row = bound(sql, args).fetch_optional(&mut **self.0).await?;
        Ok(row.map(|row| sqlx::Row::try_get(&row, 0)).transpose()?)
    }

    async fn members(&mut self, stamp: RunStamp, plan: &Plan) -> Result<Option<(i64, i64)>, StoreError> {
        members(self.0, stamp, plan).await
    }

    async fn planned_changes(&mut self, run_id: RunId, plan: &Plan) -> Result<(), StoreError> {
        planned_changes(self.0, run_id, plan).await
    }
}

/// Plan rows per round of statements. Binding whole columns of a million-row plan held all of
/// them at once as arrays (888 MiB for a first import); at this size the arrays of one round
/// are a few megabytes and the round trips still cost little beside the rows' own writes.
const ARRAY_CHUNK_ROWS: usize = 50_000;

/// Plans of at least this many rows refresh the statistics of the tables the next run reads.
const ANALYZE_FROM_ROWS: usize = 10_000;

/// Member rows this process knows of, for [`doubled_to`]: the members the statistics counted
/// when it first wrote ([`rows_known_before`]), plus the plan rows it has written since.
static ROWS_KNOWN: OnceCell<AtomicU64> = OnceCell::const_new();

/// Whether the member rows known, going from `before` to `after`, passed 1,024 or one of its
/// doublings up to 8,192: a point at which a new database's tables, growing a batch at a time
/// (SCIM), have doubled since the statistics last refreshed here.
///
/// The statistics are also the prepared statements' plans. A statement first run while its
/// tables were nearly empty keeps a generic plan that scans them whole (the cheapest plan for
/// an empty table), and PostgreSQL re-plans it only when the table is analysed: autovacuum
/// does that within a minute, during which every SCIM batch on a new database read all of a
/// fast-growing teamspace, three times (BENCHMARKS.md, PostgreSQL). Statistics of 8,192 rows
/// already make every look-up plan use its index, so later doublings are left to autovacuum:
/// each ANALYZE holds up its batch, and at 32,768 rows that took 100-200 ms.
fn doubled_to(before: u64, after: u64) -> bool {
    (10..=13).any(|k| before < 1 << k && after >= 1 << k)
}

/// Members written or changed, one array per column.
#[derive(Default)]
struct MemberColumns {
    oids: Vec<Vec<u8>>,
    emails: Vec<String>,
    names: Vec<Option<String>>,
    email_hashes: Vec<i64>,
    name_hashes: Vec<Option<i64>>,
}

impl MemberColumns {
    /// Binds the columns in the order a statement's `UNNEST` names them: oid, email, name and
    /// their fingerprints.
    fn bind<'q, O>(&'q self, query: QueryAs<'q, Postgres, O, PgArguments>) -> QueryAs<'q, Postgres, O, PgArguments> {
        query.bind(&self.oids).bind(&self.emails).bind(&self.names).bind(&self.email_hashes).bind(&self.name_hashes)
    }

    fn push(&mut self, oid: Vec<u8>, attributes: &Attributes) {
        let name = attributes.display_name.as_deref();
        self.oids.push(oid);
        self.emails.push(attributes.email.as_str().to_owned());
        self.names.push(name.map(str::to_owned));
        self.email_hashes.push(fingerprint::email(&attributes.email));
        self.name_hashes.push(name.map(fingerprint::name));
    }
}

/// Audit events, one array per column, in plan order.
#[derive(Default)]
struct EventColumns {
    actions: Vec<&'static str>,
    oids: Vec<Vec<u8>>,
    emails: Vec<String>,
    names: Vec<Option<String>>,
    previous_emails: Vec<Option<String>>,
    previous_names: Vec<Option<String>>,
}

/// The claim, member and audit rows of one plan; returns the lowest and highest audit
/// id written, if any. Each member appears once in a plan, so its rounds are independent;
/// ids drawn in a later round are higher, so events stay in plan order.
async fn members(tx: &mut PgTx, stamp: RunStamp, plan: &Plan) -> Result<Option<(i64, i64)>, StoreError> {
    let mut range: Option<(i64, i64)> = None;
    for changes in plan.changes.chunks(ARRAY_CHUNK_ROWS) {
        range = spanning(range, members_round(tx, stamp, changes).await?);
    }
    // Until autovacuum next analyses them, PostgreSQL plans the next run's ordered page reads
    // of these rows as whole-table scans (it assumes they lie in no particular order): the
    // re-plan after a 1M first import spent 12 s reading them. A new database growing a batch
    // at a time keeps scanning plans too ([`doubled_to`]). ANALYZE in the transaction counts
    // its own rows, and its statistics are published with the commit.
    let rows = plan.changes.len() as u64;
    let before = rows_known_before(tx, rows).await?;
    if plan.changes.len() >= ANALYZE_FROM_ROWS || doubled_to(before, before + rows) {
        sqlx::query("ANALYZE members, claims, scim_users").execute(&mut **tx).await?;
    }
    Ok(range)
}

/// Rounds of at least this many plan rows stream their new rows with `COPY`: four `COPY`s and
/// one statement for the ids cost a few round trips more than [`WRITE_ROUND`] alone, which a
/// SCIM batch of a few rows notices and a bulk write does not. A first import of 1M members
/// took 9-12 s this way against 16-20 s as `INSERT … SELECT FROM UNNEST` (BENCHMARKS.md,
/// PostgreSQL).
const COPY_FROM_ROWS: usize = 1_000;

/// The member rows known before a write of `rows` more, counting them in. A process's first
/// write starts from the members the table's statistics count (none on a new database), so
/// that a replica restarted on a large database does not analyse it again at each of the first
/// doublings, holding up its first batches.
async fn rows_known_before(tx: &mut PgTx, rows: u64) -> Result<u64, StoreError> {
    let known = ROWS_KNOWN
        .get_or_try_init(|| async {
            // -1 while the table was never analysed.
            let counted: f32 = sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'members'::regclass")
                .fetch_one(&mut **tx)
                .await?;
            Ok::<_, StoreError>(AtomicU64::new(counted.max(0.0) as u64))
        })
        .await?;
    Ok(known.fetch_add(rows, Ordering::Relaxed))
}

async fn members_round(tx: &mut PgTx, stamp: RunStamp, changes: &[Change]) -> Result<Option<(i64, i64)>, StoreError> {
    let mut round = Round::of(changes)?;
    let copied = if changes.len() >= COPY_FROM_ROWS { round.copy_new_rows(tx, stamp).await? } else { None };
    let written = round.write(tx, stamp).await?;
    Ok(spanning(copied, written))
}

/// The id range spanning two ranges of audit ids, either of which may be empty.
fn spanning(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
    match (a, b) {
        (Some((low, high)), Some((first, last))) => Some((low.min(first), high.max(last))),
        (range, None) | (None, range) => range,
    }
}

/// One round's rows, one array per column.
#[derive(Default)]
struct Round {
    gained: Vec<Vec<u8>>,
    dropped: Vec<Vec<u8>>,
    added: MemberColumns,
    updated: MemberColumns,
    removed: Vec<Vec<u8>>,
    events: EventColumns,
}

impl Round {
    fn of(changes: &[Change]) -> Result<Round, StoreError> {
        let mut round = Round::default();
        for change in changes {
            let oid = change.oid.to_bytes().to_vec();
            match change.claim {
                ClaimChange::Gain => round.gained.push(oid.clone()),
                ClaimChange::Drop => round.dropped.push(oid.clone()),
                ClaimChange::Keep => {}
            }
            if change.member == MemberChange::Unchanged {
                continue;
            }
            let attributes = recorded(change)?;
            let action = match change.member {
                MemberChange::Add => {
                    round.added.push(oid.clone(), attributes);
                    AuditAction::Added
                }
                MemberChange::Update { .. } => {
                    round.updated.push(oid.clone(), attributes);
                    AuditAction::Updated
                }
                MemberChange::Remove | MemberChange::Unchanged => {
                    round.removed.push(oid.clone());
                    AuditAction::Removed
                }
            };
            let (previous_email, previous_name) = previous(change);
            let events = &mut round.events;
            events.actions.push(action.into());
            events.oids.push(oid);
            events.emails.push(attributes.email.as_str().to_owned());
            events.names.push(attributes.display_name.as_deref().map(str::to_owned));
            events.previous_emails.push(previous_email.map(str::to_owned));
            events.previous_names.push(previous_name.map(str::to_owned));
        }
        Ok(round)
    }

    /// Streams the claims gained, the members added, and the audit rows with `COPY`,
    /// leaving the round's other rows to [`Round::write`]; returns the lowest and highest
    /// audit id drawn, if any.
    async fn copy_new_rows(&mut self, tx: &mut PgTx, stamp: RunStamp) -> Result<Option<(i64, i64)>, StoreError> {
        let RunStamp { teamspace_id, source_id, run_id, now } = stamp;
        let mut claims = CopyRows::new(4);
        for oid in std::mem::take(&mut self.gained) {
            claims.row().int8(teamspace_id).bytes(&oid).int8(source_id).int8(now.0);
        }
        claims.copy_into(tx, COPY_CLAIMS).await?;

        let added = std::mem::take(&mut self.added);
        let mut members = CopyRows::new(9);
        for (i, oid) in added.oids.iter().enumerate() {
            members.row().int8(teamspace_id).bytes(oid).text(&added.emails[i]).optional_text(added.names[i].as_deref());
            members.int8(added.email_hashes[i]).optional_int8(added.name_hashes[i]);
            members.int8(source_id).int8(now.0).int8(now.0);
        }
        members.copy_into(tx, COPY_MEMBERS).await?;

        let events = std::mem::take(&mut self.events);
        if events.oids.is_empty() {
            return Ok(None);
        }
        let ids: Vec<i64> = sqlx::query_scalar(EVENT_IDS).bind(events.oids.len() as i64).fetch_one(&mut **tx).await?;
        let mut audit = CopyRows::new(12);
        for (i, id) in ids.iter().enumerate() {
            audit.row().int8(*id).int8(teamspace_id).int8(run_id.0).int8(source_id).text(events.actions[i]);
            audit.bytes(&events.oids[i]).text(&events.emails[i]).optional_text(events.names[i].as_deref());
            audit.text("developer").optional_text(events.previous_emails[i].as_deref());
            audit.optional_text(events.previous_names[i].as_deref()).int8(now.0);
        }
        audit.copy_into(tx, COPY_AUDIT).await?;
        Ok(ids.first().copied().zip(ids.last().copied()))
    }

    /// The round's rows in one statement ([`WRITE_ROUND`]); returns the lowest and highest
    /// audit id drawn, if any.
    async fn write(&self, tx: &mut PgTx, stamp: RunStamp) -> Result<Option<(i64, i64)>, StoreError> {
        let RunStamp { teamspace_id, source_id, run_id, now } = stamp;
        let query = sqlx::query_as(WRITE_ROUND)
            .bind(teamspace_id)
            .bind(source_id)
            .bind(now.0)
            .bind(run_id.0)
            .bind(&self.gained)
            .bind(&self.dropped);
        let events = &self.events;
        let query = self
            .updated
            .bind(self.added.bind(query))
            .bind(&self.removed)
            .bind(&events.actions)
            .bind(&events.oids)
            .bind(&events.emails)
            .bind(&events.names)
            .bind(&events.previous_emails)
            .bind(&events.previous_names);
        let (first, last): (Option<i64>, Option<i64>) = query.fetch_one(&mut **tx).await?;
        Ok(first.zip(last))
    }
}

/// `$1` audit ids, drawn in ascending order (the order events are delivered in).
const EVENT_IDS: &str = "SELECT ARRAY(SELECT nextval('audit_event_ids') FROM generate_series(1, $1) ORDER BY 1)";

const COPY_CLAIMS: &str = "COPY claims (teamspace_id, oid, source_id, created_at) FROM STDIN (FORMAT binary)";

const COPY_MEMBERS: &str = "COPY members (teamspace_id, oid, email, display_name, email_hash, name_hash, \
     attrs_source_id, created_at, updated_at) FROM STDIN (FORMAT binary)";

const COPY_AUDIT: &str = "COPY audit_events (id, teamspace_id, run_id, source_id, action, oid, email, display_name, \
     role, previous_email, previous_display_name, occurred_at) FROM STDIN (FORMAT binary)";

/// One round of a plan's rows as one statement: a SCIM batch is a round of a few rows, where
/// each statement's round trip costs more than its writes (BENCHMARKS.md, SCIM on PostgreSQL).
/// The parts touch different rows (a member appears once in a plan), so that they run
/// side by side on one snapshot changes nothing. Audit ids are drawn in plan order; returns
/// the lowest and highest id drawn.
/// `$1` teamspace, `$2` source, `$3` now, `$4` run; claims gained `$5` and dropped `$6`;
/// members added `$7`–`$11` and updated `$12`–`$16` (oid, email, name, their fingerprints);
/// members removed `$17`; events `$18`–`$23` (action, oid, email, name, previous email and
/// name).
const WRITE_ROUND: &str = "WITH \
     gained AS (INSERT INTO claims (teamspace_id, oid, source_id, created_at) \
         SELECT $1, u.oid, $2, $3 FROM UNNEST($5::bytea[]) AS u(oid)), \
     dropped AS (DELETE FROM claims WHERE teamspace_id = $1 AND source_id = $2 AND oid = ANY($6)), \
     added AS (INSERT INTO members (teamspace_id, oid, email, display_name, email_hash, name_hash, \
             attrs_source_id, created_at, updated_at) \
         SELECT $1, u.oid, u.email, u.name, u.email_hash, u.name_hash, $2, $3, $3 \
         FROM UNNEST($7::bytea[], $8::text[], $9::text[], $10::int8[], $11::int8[]) \
             AS u(oid, email, name, email_hash, name_hash)), \
     updated AS (UPDATE members m SET email = u.email, display_name = u.name, email_hash = u.email_hash, \
             name_hash = u.name_hash, attrs_source_id = $2, updated_at = $3 \
         FROM UNNEST($12::bytea[], $13::text[], $14::text[], $15::int8[], $16::int8[]) \
             AS u(oid, email, name, email_hash, name_hash) \
         WHERE m.teamspace_id = $1 AND m.oid = u.oid), \
     removed AS (DELETE FROM members WHERE teamspace_id = $1 AND oid = ANY($17)), \
     events AS (INSERT INTO audit_events (id, teamspace_id, run_id, source_id, action, oid, email, \
             display_name, role, previous_email, previous_display_name, occurred_at) \
         SELECT nextval('audit_event_ids'), $1, $4, $2, u.action, u.oid, u.email, u.name, 'developer', \
             u.previous_email, u.previous_name, $3 \
         FROM UNNEST($18::text[], $19::bytea[], $20::text[], $21::text[], $22::text[], $23::text[]) \
             WITH ORDINALITY AS u(action, oid, email, name, previous_email, previous_name, n) \
         ORDER BY u.n RETURNING id) \
     SELECT min(id), max(id) FROM events";

/// The planned changes of a run that is kept for `runs show` and `runs approve`, by position.
async fn planned_changes(tx: &mut PgTx, run_id: RunId, plan: &Plan) -> Result<(), StoreError> {
    for (round, changes) in plan.changes.chunks(ARRAY_CHUNK_ROWS).enumerate() {
        planned_changes_round(tx, run_id, (round * ARRAY_CHUNK_ROWS) as i64, changes).await?;
    }
    Ok(())
}

/// `changes` start at position `first_seq` of the plan.
async fn planned_changes_round(
    tx: &mut PgTx,
    run_id: RunId,
    first_seq: i64,
    changes: &[Change],
) -> Result<(), StoreError> {
    let rows = changes.len();
    let (mut oids, mut claims, mut effects) = (Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::new());
    let (mut emails, mut names) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    let (mut previous_emails, mut previous_names) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for change in changes {
        let attributes = recorded(change)?;
        let (previous_email, previous_name) = previous(change);
        oids.push(change.oid.to_bytes().to_vec());
        claims.push(claim_word(change.claim));
        effects.push(<&str>::from(MemberEffect::from(&change.member)));
        emails.push(attributes.email.as_str());
        names.push(attributes.display_name.as_deref());
        previous_emails.push(previous_email);
        previous_names.push(previous_name);
    }
    sqlx::query(
        "INSERT INTO planned_changes (run_id, seq, oid, claim, member, email, display_name, previous_email, \
             previous_display_name) \
         SELECT $1, $9 + u.n - 1, u.oid, u.claim, u.member, u.email, u.name, u.previous_email, u.previous_name \
         FROM UNNEST($2::bytea[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) \
             WITH ORDINALITY AS u(oid, claim, member, email, name, previous_email, previous_name, n)",
    )
    .bind(run_id.0)
    .bind(&oids)
    .bind(&claims)
    .bind(&effects)
    .bind(&emails)
    .bind(&names)
    .bind(&previous_emails)
    .bind(&previous_names)
    .bind(first_seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The stored email and display name of each of `oids`.
pub(in crate::store) async fn stored_attributes(
    tx: &mut PgTx,
    teamspace_id: i64,
    oids: &[Oid],
) -> Result<HashMap<Oid, Attributes>, StoreError> {
    let keys: Vec<Vec<u8>> = oids.iter().map(|o| o.to_bytes().to_vec()).collect();
    let rows: Vec<(Vec<u8>, String, Option<String>)> =
        sqlx::query_as("SELECT oid, email, display_name FROM members WHERE teamspace_id = $1 AND oid = ANY($2)")
            .bind(teamspace_id)
            .bind(&keys)
            .fetch_all(&mut **tx)
            .await?;
    let mut stored = HashMap::with_capacity(rows.len());
    for (oid, email, display_name) in rows {
        let oid = Oid::from_bytes(&oid).ok_or_else(|| StoreError::corrupt("members.oid", "not 16 bytes"))?;
        let email = email.parse().map_err(|e| StoreError::corrupt("members.email", e))?;
        stored.insert(oid, Attributes { email, display_name: display_name.map(DisplayName::from_stored) });
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::doubled_to;

    #[test]
    fn statistics_refresh_at_each_doubling_from_1024_to_8192_rows() {
        assert!(!doubled_to(0, 1023));
        assert!(doubled_to(1023, 1024));
        assert!(doubled_to(1000, 1100));
        assert!(!doubled_to(1024, 2047));
        assert!(doubled_to(2040, 2050));
        assert!(doubled_to(0, 1_000_000), "one large write passes them all");
        assert!(doubled_to(8191, 8192));
        assert!(!doubled_to(8192, 1 << 20), "past 8,192 only large plans refresh them");
    }
}
