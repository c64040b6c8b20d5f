//! Consistency checks over the tables that carry no FOREIGN KEY clauses (see the migration):
//! what the single write path guarantees, verified. Used by tests and crash checks.

use super::{Store, StoreError};

/// Each check: a description and a query counting the rows that break it.
const CHECKS: &[(&str, &str)] = &[
    (
        "claims whose member does not exist",
        "SELECT count(*) FROM claims c WHERE NOT EXISTS \
         (SELECT 1 FROM members m WHERE m.teamspace_id = c.teamspace_id AND m.oid = c.oid)",
    ),
    (
        // SQLite's schema no longer checks it per row (migration 0011).
        "members whose oid is not 16 bytes",
        "SELECT count(*) FROM members WHERE length(oid) <> 16",
    ),
    (
        "members with no claim",
        "SELECT count(*) FROM members m WHERE NOT EXISTS \
         (SELECT 1 FROM claims c WHERE c.teamspace_id = m.teamspace_id AND c.oid = m.oid)",
    ),
    (
        "members or claims of an unknown teamspace or source",
        "SELECT (SELECT count(*) FROM members m WHERE NOT EXISTS (SELECT 1 FROM sources s \
           WHERE s.id = m.attrs_source_id AND s.teamspace_id = m.teamspace_id)) \
         + (SELECT count(*) FROM claims c WHERE NOT EXISTS (SELECT 1 FROM sources s \
           WHERE s.id = c.source_id AND s.teamspace_id = c.teamspace_id))",
    ),
    (
        "events delivery has passed without recording them",
        "SELECT count(*) FROM audit_events a JOIN delivery_cursors c ON c.teamspace_id = a.teamspace_id \
         WHERE a.id < c.next_event_id AND NOT EXISTS \
           (SELECT 1 FROM outbox o WHERE o.teamspace_id = a.teamspace_id AND o.event_id = a.id)",
    ),
    (
        "outbox events past their teamspace's delivery cursor",
        "SELECT count(*) FROM outbox o WHERE o.event_id >= coalesce( \
           (SELECT c.next_event_id FROM delivery_cursors c WHERE c.teamspace_id = o.teamspace_id), 0)",
    ),
    (
        "outbox events without their audit event",
        "SELECT count(*) FROM outbox o WHERE NOT EXISTS \
         (SELECT 1 FROM audit_events a WHERE a.id = o.event_id AND a.teamspace_id = o.teamspace_id)",
    ),
    (
        "audit events of a run that is not applied, or outside its recorded range",
        "SELECT count(*) FROM audit_events a LEFT JOIN runs r ON r.id = a.run_id \
         WHERE r.id IS NULL OR r.outcome <> 'applied' OR a.id NOT BETWEEN r.first_event_id AND r.last_event_id",
    ),
    (
        "scim claims with no active, usable SCIM user of that oid",
        "SELECT count(*) FROM claims c JOIN sources s ON s.id = c.source_id AND s.kind = 'scim' \
         WHERE NOT EXISTS (SELECT 1 FROM scim_users u WHERE u.teamspace_id = c.teamspace_id AND u.oid = c.oid \
           AND u.active AND u.member_problem IS NULL)",
    ),
    (
        "SCIM group member rows of an unknown group",
        "SELECT count(*) FROM scim_group_members m WHERE NOT EXISTS \
         (SELECT 1 FROM scim_groups g WHERE g.teamspace_id = m.teamspace_id AND g.id = m.group_id)",
    ),
];

impl Store {
    /// Every broken consistency rule, with the number of offending rows; empty when sound.
    pub async fn check_integrity(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        for (rule, sql) in CHECKS {
            let broken: i64 = on_pool!(&self.pool, pool => sqlx::query_scalar(sql).fetch_one(pool).await)?;
            if broken > 0 {
                problems.push(format!("{broken} {rule}"));
            }
        }
        Ok(problems)
    }
}
