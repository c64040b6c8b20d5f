//! Reading members: the planner's view (members with their claims) and the listing view.

use serde::Serialize;

use super::engine::Fields;
use super::WriteSession;
use super::{Store, StoreError};
use crate::clock::Millis;
use crate::domain::{Oid, SourceName};

/// Which members the planner needs.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The whole teamspace (snapshot runs).
    All,
    /// Only these oids (delta runs).
    Oids(&'a [Oid]),
}

/// A member for listing.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRecord {
    /// Tenant id of the teamspace.
    pub tenant_id: String,
    /// Entra object id.
    pub oid: Oid,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Role.
    pub role: String,
    /// Every source claiming the member, as `kind:id`.
    pub sources: Vec<String>,
    /// When first provisioned.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

fn member_of(row: &impl Fields) -> Result<MemberRecord, StoreError> {
    let sources: Option<String> = row.field("sources")?;
    let mut sources: Vec<String> = sources
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse::<SourceName>().ok().map(|n| n.to_string()))
        .collect();
    sources.sort();
    Ok(MemberRecord {
        tenant_id: row.field("tenant_id")?,
        oid: oid_of(row, "oid")?,
        email: row.field("email")?,
        display_name: row.field("display_name")?,
        role: row.field("role")?,
        created_at: Millis(row.field("created_at")?),
        updated_at: Millis(row.field("updated_at")?),
        sources,
    })
}

const MEMBER_SELECT: &str = concat!(
    "SELECT t.tenant_id, m.oid, m.email, m.display_name, m.role, m.created_at, m.updated_at, \
     (SELECT string_agg(",
    source_label!(),
    ", ' ') FROM claims c JOIN sources s ON s.id = c.source_id \
       WHERE c.teamspace_id = m.teamspace_id AND c.oid = m.oid) AS sources \
     FROM members m JOIN teamspaces t ON t.id = m.teamspace_id"
);

pub(super) fn oid_of(row: &impl Fields, column: &str) -> Result<Oid, StoreError> {
    oid_from(row.field(column)?)
}

/// An oid as stored: 16 bytes in GUID order.
pub(super) fn oid_from(bytes: Vec<u8>) -> Result<Oid, StoreError> {
    Oid::from_bytes(&bytes).ok_or_else(|| StoreError::corrupt("oid", format!("{} bytes", bytes.len())))
}

impl WriteSession {
    /// Number of members in the session's teamspace, as the session sees it.
    pub async fn count_members(&mut self) -> Result<u64, StoreError> {
        let teamspace = self.teamspace.id;
        let n: i64 = on_tx!(&mut self.tx, c => sqlx::query_scalar("SELECT count(*) FROM members WHERE teamspace_id = $1")
            .bind(teamspace)
            .fetch_one(&mut *c)
            .await)?;
        Ok(n.unsigned_abs())
    }
}

impl Store {
    /// Number of members in the teamspace.
    pub async fn count_members(&self, teamspace_id: i64) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(&self.pool, pool => sqlx::query_scalar("SELECT count(*) FROM members WHERE teamspace_id = $1")
            .bind(teamspace_id)
            .fetch_one(pool)
            .await)?;
        Ok(n.unsigned_abs())
    }

    /// One member, with the sources claiming it: one primary-key read (`members remove`, the
    /// API's "is this oid provisioned" look-up).
    pub async fn member(&self, teamspace_id: i64, oid: Oid) -> Result<Option<MemberRecord>, StoreError> {
        let sql = format!("{MEMBER_SELECT} WHERE m.teamspace_id = $1 AND m.oid = $2");
        on_pool!(&self.pool, pool => {
        let row = sqlx::query(&sql).bind(teamspace_id).bind(&oid.to_bytes()[..]).fetch_optional(pool).await?;
        row.as_ref().map(member_of).transpose()
        })
    }

    /// A keyset page of members in oid order, after `after`.
    pub async fn members_after(
        &self,
        teamspace_id: i64,
        after: Option<Oid>,
        limit: i64,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        let sql = format!("{MEMBER_SELECT} WHERE m.teamspace_id = $1 AND m.oid > $2 ORDER BY m.oid LIMIT $3");
        let after = after.map(|o| o.to_bytes().to_vec()).unwrap_or_default();
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql).bind(teamspace_id).bind(after).bind(limit).fetch_all(pool).await?;
        rows.iter().map(member_of).collect()
        })
    }

    /// A keyset page, in oid order after `after`, of the members whose email or display name
    /// contains `text` (ignoring ASCII case). Pages stop as soon as they are full, so a common
    /// term answers at once; a term few members have reads the teamspace once (no index on
    /// emails: it would slow every bulk write for the sake of a console search).
    pub async fn search_members(
        &self,
        teamspace_id: i64,
        text: &str,
        after: Option<Oid>,
        limit: i64,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        let sql = format!(
            "{MEMBER_SELECT} WHERE m.teamspace_id = $1 AND m.oid > $2 \
             AND (lower(m.email) LIKE $3 ESCAPE '\\' OR lower(coalesce(m.display_name, '')) LIKE $3 ESCAPE '\\') \
             ORDER BY m.oid LIMIT $4"
        );
        let pattern = format!("%{}%", like_escaped(&text.to_ascii_lowercase()));
        let after = after.map(|o| o.to_bytes().to_vec()).unwrap_or_default();
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql).bind(teamspace_id).bind(after).bind(pattern).bind(limit).fetch_all(pool).await?;
        rows.iter().map(member_of).collect()
        })
    }

    /// Every member, ordered by email, with the sources claiming each.
    pub async fn list_members(&self, teamspace_id: i64) -> Result<Vec<MemberRecord>, StoreError> {
        let sql = format!("{MEMBER_SELECT} WHERE m.teamspace_id = $1 ORDER BY lower(m.email), m.oid");
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql).bind(teamspace_id).fetch_all(pool).await?;
        rows.iter().map(member_of).collect()
        })
    }
}

/// `text` with LIKE's wildcards taken literally (each escaped with a backslash).
fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
