//! SQL for SCIM: bearer tokens, and the User and Group resources. Reads go through the pool;
//! writes through a [`WriteSession`], so a resource change and the member change it implies
//! commit together.

use super::engine::{Fields, Tx};
use super::members::oid_of;
use super::scim_condition::{self, Rendering, ScimCondition};
use super::values::{values_list, LIST_CHUNK_ROWS};
use super::{postgres, sqlite, Store, StoreError, WriteSession};
use crate::clock::Millis;
use crate::domain::Oid;

/// Users or Groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `/Users`.
    User,
    /// `/Groups`.
    Group,
}

impl ResourceKind {
    fn table(self) -> &'static str {
        match self {
            ResourceKind::User => "scim_users",
            ResourceKind::Group => "scim_groups",
        }
    }
}

/// A stored resource: its JSON body (without `id` and `meta`) and its bookkeeping.
#[derive(Debug, Clone)]
pub struct StoredResource {
    /// The SCIM id.
    pub id: String,
    /// The body as JSON text.
    pub resource: String,
    /// Bumped by every change: the ETag.
    pub version: i64,
    /// `meta.created`.
    pub created_at: Millis,
    /// `meta.lastModified`.
    pub updated_at: Millis,
}

/// The indexed facts of a User, derived from its body by the SCIM layer.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// SCIM id.
    pub id: String,
    /// `userName` as given.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `active`.
    pub active: bool,
    /// The member's object id, when the oid attribute is a GUID.
    pub oid: Option<Oid>,
    /// Why an active user is not a member.
    pub member_problem: Option<String>,
    /// The body.
    pub resource: String,
}

/// The indexed facts of a Group.
#[derive(Debug, Clone)]
pub struct GroupRow {
    /// SCIM id.
    pub id: String,
    /// `displayName`.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `members[].value`.
    pub member_ids: Vec<String>,
    /// The body.
    pub resource: String,
}

/// A SCIM token as `scim-token list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScimTokenRecord {
    /// Token id (the public part of the token).
    pub id: i64,
    /// Teamspace slug.
    pub teamspace: String,
    /// Free text.
    pub label: String,
    /// Creation time.
    pub created_at: Millis,
    /// Last successful use, to the minute.
    pub last_used_at: Option<Millis>,
    /// When revoked.
    pub revoked_at: Option<Millis>,
}

/// What authenticating a token needs.
#[derive(Debug, Clone)]
pub struct TokenCredential {
    /// Teamspace row id.
    pub teamspace_id: i64,
    /// Teamspace slug.
    pub teamspace: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// Revoked tokens never authenticate.
    pub revoked: bool,
}

fn resource_of(row: &impl Fields) -> Result<StoredResource, StoreError> {
    Ok(StoredResource {
        id: row.field("id")?,
        resource: row.field("resource")?,
        version: row.field("version")?,
        created_at: Millis(row.field("created_at")?),
        updated_at: Millis(row.field("updated_at")?),
    })
}

const RESOURCE_COLUMNS: &str = "r.id, r.resource, r.version, r.created_at, r.updated_at";

/// One resource by teamspace and id, read through the pool or inside a write session.
fn by_id_sql(kind: ResourceKind) -> String {
    format!("SELECT {RESOURCE_COLUMNS} FROM {} r WHERE r.teamspace_id = $1 AND r.id = $2", kind.table())
}

impl Store {
    /// Stores a new token's hash; returns its id.
    pub async fn create_scim_token(
        &self,
        teamspace_id: i64,
        label: &str,
        secret_hash: &[u8],
        now: Millis,
    ) -> Result<i64, StoreError> {
        let id = on_pool!(&self.pool, pool => sqlx::query_scalar(
            "INSERT INTO scim_tokens (teamspace_id, label, secret_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(teamspace_id)
        .bind(label)
        .bind(secret_hash)
        .bind(now.0)
        .fetch_one(pool)
        .await)?;
        Ok(id)
    }

    /// Tokens, newest first, of one teamspace or all.
    pub async fn list_scim_tokens(&self, teamspace_id: Option<i64>) -> Result<Vec<ScimTokenRecord>, StoreError> {
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(
            "SELECT k.id, t.name AS teamspace, k.label, k.created_at, k.last_used_at, k.revoked_at \
             FROM scim_tokens k JOIN teamspaces t ON t.id = k.teamspace_id \
             WHERE ($1 IS NULL OR k.teamspace_id = $1) ORDER BY k.id DESC",
        )
        .bind(teamspace_id)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ScimTokenRecord {
                    id: row.field("id")?,
                    teamspace: row.field("teamspace")?,
                    label: row.field("label")?,
                    created_at: Millis(row.field("created_at")?),
                    last_used_at: row.field::<Option<i64>>("last_used_at")?.map(Millis),
                    revoked_at: row.field::<Option<i64>>("revoked_at")?.map(Millis),
                })
            })
            .collect()
        })
    }

    /// Revokes a token; revoking twice is fine.
    pub async fn revoke_scim_token(&self, id: i64, now: Millis) -> Result<(), StoreError> {
        let done = on_pool!(&self.pool, pool => sqlx::query("UPDATE scim_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2")
            .bind(now.0)
            .bind(id)
            .execute(pool)
            .await.map(|done| done.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("SCIM token {id}")));
        }
        Ok(())
    }

    /// What is needed to check a presented token with id `id`.
    pub async fn scim_token(&self, id: i64) -> Result<Option<TokenCredential>, StoreError> {
        on_pool!(&self.pool, pool => {
        let row = sqlx::query(
            "SELECT k.teamspace_id, t.name AS teamspace, k.secret_hash, k.revoked_at IS NOT NULL AS revoked \
             FROM scim_tokens k JOIN teamspaces t ON t.id = k.teamspace_id WHERE k.id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
        row.map(|row| {
            Ok(TokenCredential {
                teamspace_id: row.field("teamspace_id")?,
                teamspace: row.field("teamspace")?,
                secret_hash: row.field("secret_hash")?,
                revoked: row.field("revoked")?,
            })
        })
        .transpose()
        })
    }

    /// Notes that a token was used (callers throttle this to once a minute).
    pub async fn touch_scim_token(&self, id: i64, now: Millis) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => sqlx::query("UPDATE scim_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now.0)
            .bind(id)
            .execute(pool)
            .await.map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// One resource by id.
    pub async fn scim_get(
        &self,
        teamspace_id: i64,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let sql = by_id_sql(kind);
        on_pool!(&self.pool, pool => {
        let row = sqlx::query(&sql).bind(teamspace_id).bind(id).fetch_optional(pool).await?;
        row.as_ref().map(resource_of).transpose()
        })
    }

    /// A page of resources in creation order, with the total, optionally filtered on indexed
    /// attributes.
    pub async fn scim_query(
        &self,
        teamspace_id: i64,
        kind: ResourceKind,
        filter: Option<&ScimCondition>,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<StoredResource>), StoreError> {
        let mut condition = Rendering::new(self.engine(), 2);
        if let Some(filter) = filter {
            condition.sql.push_str(" AND ");
            scim_condition::render(filter, kind, &mut condition)?;
        }
        let (limit_param, offset_param) = (condition.next_param(), condition.next_param() + 1);
        let Rendering { sql: condition, args, .. } = condition;
        let table = kind.table();
        let count_sql = format!("SELECT count(*) FROM {table} r WHERE r.teamspace_id = $1{condition}");
        let page_sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM {table} r WHERE r.teamspace_id = $1{condition} ORDER BY r.seq \
             LIMIT ${limit_param} OFFSET ${offset_param}"
        );
        on_pool!(&self.pool, pool => {
            let mut page = sqlx::query(&page_sql).bind(teamspace_id);
            for arg in &args {
                page = page.bind(arg);
            }
            let rows = if limit > 0 { page.bind(limit).bind(offset).fetch_all(pool).await? } else { Vec::new() };
            // A first page with room to spare holds everything: no need to count (the common
            // `userName eq` look-up answers with one query).
            let total = if offset == 0 && (rows.len() as i64) < limit {
                rows.len() as i64
            } else {
                let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(teamspace_id);
                for arg in &args {
                    count = count.bind(arg);
                }
                count.fetch_one(pool).await?
            };
            Ok((total, rows.iter().map(resource_of).collect::<Result<_, _>>()?))
        })
    }
}

impl Store {
    /// Up to `limit` resources after sequence number `after`, in order, with their sequence
    /// numbers: a whole-teamspace scan in pieces, each on a connection only briefly.
    pub async fn scim_chunk(
        &self,
        teamspace_id: i64,
        kind: ResourceKind,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, StoredResource)>, StoreError> {
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS}, r.seq FROM {} r WHERE r.teamspace_id = $1 AND r.seq > $2 ORDER BY r.seq LIMIT $3",
            kind.table()
        );
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql).bind(teamspace_id).bind(after).bind(limit).fetch_all(pool).await?;
        rows.iter().map(|row| Ok((row.field("seq")?, resource_of(row)?))).collect()
        })
    }
}

/// Inserts or replaces a user, both engines: `$1` teamspace, `$2` id, `$3` userName, `$4` its
/// lower case, `$5` externalId, `$6` displayName, `$7` active, `$8` oid, `$9` why it is not a
/// member, `$10` body, `$11` now; returns its version and creation time. A new resource's `seq`
/// (its place in list order) is the teamspace's next: safe with concurrent writers because a
/// teamspace's writes are serialised from `begin_write` to the commit.
pub(super) const PUT_USER: &str = "INSERT INTO scim_users (teamspace_id, id, seq, user_name, user_name_key, \
         external_id, display_name, active, oid, member_problem, resource, version, created_at, updated_at) \
     VALUES ($1, $2, (SELECT coalesce(max(seq), 0) + 1 FROM scim_users WHERE teamspace_id = $1), \
         $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $11) \
     ON CONFLICT (teamspace_id, id) DO UPDATE SET user_name = excluded.user_name, \
         user_name_key = excluded.user_name_key, external_id = excluded.external_id, \
         display_name = excluded.display_name, active = excluded.active, oid = excluded.oid, \
         member_problem = excluded.member_problem, resource = excluded.resource, \
         version = scim_users.version + 1, updated_at = excluded.updated_at \
     RETURNING version, created_at";

/// Each user's outcome, in order: its new version and creation time, or its refusal.
pub type UserWrites = Vec<Result<(i64, Millis), StoreError>>;

/// A write's own refusal (a unique index) stays with it; any other error is the database's,
/// and ends the batch.
pub(super) fn refusal_or_failure<T>(outcome: Result<T, StoreError>) -> Result<Result<T, StoreError>, StoreError> {
    match outcome {
        Err(refused @ StoreError::Duplicate(_)) => Ok(Err(refused)),
        Err(failure) => Err(failure),
        Ok(done) => Ok(Ok(done)),
    }
}

/// A resource to insert or replace.
#[derive(Debug, Clone, Copy)]
pub enum ScimPut<'a> {
    /// A user.
    User(&'a UserRow),
    /// A group and its member index.
    Group(&'a GroupRow),
}

/// One SCIM request makes one write, [`WriteSession::scim_put`] or [`WriteSession::scim_delete`]:
/// applied whole or, when it fails (a uniqueness violation, say), not at all, while the
/// transaction goes on. So a refused request in a batch leaves nothing behind.
impl WriteSession {
    /// Inserts or replaces a resource; returns its new version and creation time.
    pub async fn scim_put(&mut self, put: ScimPut<'_>, now: Millis) -> Result<(i64, Millis), StoreError> {
        let group = match put {
            ScimPut::User(user) => {
                let mut stored = self.scim_put_users(&[user], now).await?;
                return stored
                    .pop()
                    .unwrap_or_else(|| Err(StoreError::corrupt("scim_users", "no outcome for a write")));
            }
            ScimPut::Group(group) => group,
        };
        self.savepoint().await?;
        let stored = self.put_group(group, now).await;
        self.end_savepoint(stored.is_ok()).await?;
        stored
    }

    /// Inserts or replaces each of `users` in order, each whole or not at all: one refused by a
    /// unique index gets its error in the list, leaves nothing behind, and the rest go on. The
    /// outer error is a failure of the database, after which the transaction is lost.
    ///
    /// On SQLite the whole list is one hand-off to the connection's thread (a SCIM batch of
    /// creations is most of its statements), and no savepoint is needed: SQLite undoes a
    /// failing statement by itself. PostgreSQL aborts the whole transaction on any error unless
    /// it was inside a savepoint, so there a list goes in as one statement that skips whoever
    /// a unique index refuses, and only when it skipped someone, one user per savepoint.
    pub async fn scim_put_users(&mut self, users: &[&UserRow], now: Millis) -> Result<UserWrites, StoreError> {
        let teamspace_id = self.teamspace.id;
        match &mut self.tx {
            Tx::Sqlite(tx) => {
                sqlite::bulk::with_connection(tx, users.len(), |c| sqlite::scim::put_users(c, teamspace_id, users, now))
                    .await
            }
            Tx::Postgres(tx) => postgres::scim::put_users(tx, teamspace_id, users, now).await,
        }
    }

    /// Deletes a resource (and its group memberships), if it is there.
    pub async fn scim_delete(&mut self, kind: ResourceKind, id: &str) -> Result<(), StoreError> {
        self.savepoint().await?;
        let deleted = self.delete_resource(kind, id).await;
        self.end_savepoint(deleted.is_ok()).await?;
        deleted
    }

    /// One resource by id, read under the write lock (for read-modify-write).
    pub async fn scim_get(&mut self, kind: ResourceKind, id: &str) -> Result<Option<StoredResource>, StoreError> {
        let sql = by_id_sql(kind);
        on_tx!(&mut self.tx, c => {
        let row = sqlx::query(&sql).bind(self.teamspace.id).bind(id).fetch_optional(&mut *c).await?;
        row.as_ref().map(resource_of).transpose()
        })
    }

    /// Inserts or replaces a group and its member index; returns its new version and creation
    /// time.
    async fn put_group(&mut self, group: &GroupRow, now: Millis) -> Result<(i64, Millis), StoreError> {
        let (version, created_at): (i64, i64) = on_tx!(&mut self.tx, c => sqlx::query_as(
            "INSERT INTO scim_groups (teamspace_id, id, seq, display_name, display_name_key, external_id, resource, \
                 version, created_at, updated_at) \
             VALUES ($1, $2, (SELECT coalesce(max(seq), 0) + 1 FROM scim_groups WHERE teamspace_id = $1), \
                 $3, $4, $5, $6, 1, $7, $7) \
             ON CONFLICT (teamspace_id, id) DO UPDATE SET display_name = excluded.display_name, \
                 display_name_key = excluded.display_name_key, external_id = excluded.external_id, \
                 resource = excluded.resource, version = scim_groups.version + 1, updated_at = excluded.updated_at \
             RETURNING version, created_at",
        )
        .bind(self.teamspace.id)
        .bind(&group.id)
        .bind(&group.display_name)
        .bind(group.display_name.to_lowercase())
        .bind(&group.external_id)
        .bind(&group.resource)
        .bind(now.0)
        .fetch_one(&mut *c)
        .await)?;
        on_tx!(&mut self.tx, c => sqlx::query("DELETE FROM scim_group_members WHERE teamspace_id = $1 AND group_id = $2")
            .bind(self.teamspace.id)
            .bind(&group.id)
            .execute(&mut *c)
            .await.map(|done| done.rows_affected()))?;
        match &mut self.tx {
            // Multi-row inserts: a group of 10,000 members is 20 statements, not 10,000.
            Tx::Sqlite(tx) => {
                for chunk in group.member_ids.chunks(LIST_CHUNK_ROWS) {
                    let sql = format!(
                        "INSERT OR IGNORE INTO scim_group_members (teamspace_id, group_id, member_id) VALUES {}",
                        values_list("(?, ?, ?)", chunk.len())
                    );
                    let mut query = sqlx::query(&sql);
                    for member in chunk {
                        query = query.bind(self.teamspace.id).bind(&group.id).bind(member);
                    }
                    query.execute(&mut **tx).await?;
                }
            }
            Tx::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO scim_group_members (teamspace_id, group_id, member_id) \
                     SELECT $1, $2, u.member FROM UNNEST($3::text[]) AS u(member) ON CONFLICT DO NOTHING",
                )
                .bind(self.teamspace.id)
                .bind(&group.id)
                .bind(&group.member_ids)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok((version, Millis(created_at)))
    }

    /// Deletes a resource (and a group's member index, or a user's memberships), if it is
    /// there.
    async fn delete_resource(&mut self, kind: ResourceKind, id: &str) -> Result<(), StoreError> {
        let sql = format!("DELETE FROM {} WHERE teamspace_id = $1 AND id = $2", kind.table());
        let index = match kind {
            ResourceKind::User => "DELETE FROM scim_group_members WHERE teamspace_id = $1 AND member_id = $2",
            ResourceKind::Group => "DELETE FROM scim_group_members WHERE teamspace_id = $1 AND group_id = $2",
        };
        on_tx!(&mut self.tx, c => {
            sqlx::query(&sql).bind(self.teamspace.id).bind(id).execute(&mut *c).await?;
            sqlx::query(index).bind(self.teamspace.id).bind(id).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// The SCIM users standing for each of `oids` (sorted, distinct), in one query per chunk.
    pub async fn scim_users_of_oids(&mut self, oids: &[Oid]) -> Result<Vec<(Oid, ScimUserFacts)>, StoreError> {
        let mut found = Vec::new();
        for chunk in oids.chunks(LIST_CHUNK_ROWS) {
            let keys = chunk.iter().map(|oid| oid.to_bytes().to_vec());
            match &mut self.tx {
                Tx::Sqlite(tx) => {
                    // Without statistics SQLite prefers the primary key's teamspace prefix, a scan.
                    let sql = format!(
                        "SELECT oid, id, active, member_problem IS NULL AS usable, resource FROM scim_users \
                         INDEXED BY scim_users_by_oid WHERE teamspace_id = ? AND oid IN ({})",
                        values_list("?", chunk.len())
                    );
                    let mut query = sqlx::query(&sql).bind(self.teamspace.id);
                    for key in keys {
                        query = query.bind(key);
                    }
                    for row in query.fetch_all(&mut **tx).await? {
                        found.push(user_facts_of(&row)?);
                    }
                }
                Tx::Postgres(tx) => {
                    let rows = sqlx::query(
                        "SELECT oid, id, active, member_problem IS NULL AS usable, resource FROM scim_users \
                         WHERE teamspace_id = $1 AND oid = ANY($2)",
                    )
                    .bind(self.teamspace.id)
                    .bind(keys.collect::<Vec<_>>())
                    .fetch_all(&mut **tx)
                    .await?;
                    for row in &rows {
                        found.push(user_facts_of(row)?);
                    }
                }
            }
        }
        Ok(found)
    }

    /// The oids of the users who are members of the group `group_id`.
    pub async fn scim_group_member_oids(&mut self, group_id: &str) -> Result<Vec<Oid>, StoreError> {
        on_tx!(&mut self.tx, c => {
        let rows = sqlx::query(
            // CROSS JOIN keeps the group's members as the outer loop (SQLite would otherwise
            // walk every user of the teamspace).
            "SELECT DISTINCT u.oid FROM scim_group_members m CROSS JOIN scim_users u \
             WHERE u.teamspace_id = m.teamspace_id AND u.id = m.member_id \
             AND m.teamspace_id = $1 AND m.group_id = $2 AND u.oid IS NOT NULL",
        )
        .bind(self.teamspace.id)
        .bind(group_id)
        .fetch_all(&mut *c)
        .await?;
        rows.iter().map(|row| oid_of(row, "oid")).collect()
        })
    }

    /// Lower-cased display names of the groups the user is a direct member of.
    pub async fn scim_group_names_of(&mut self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = on_tx!(&mut self.tx, c => sqlx::query_scalar(
            "SELECT g.display_name_key FROM scim_group_members m \
             JOIN scim_groups g ON g.teamspace_id = m.teamspace_id AND g.id = m.group_id \
             WHERE m.teamspace_id = $1 AND m.member_id = $2",
        )
        .bind(self.teamspace.id)
        .bind(user_id)
        .fetch_all(&mut *c)
        .await)?;
        Ok(rows)
    }

    /// Commits SCIM resource changes that change no member.
    pub async fn commit(self) -> Result<(), StoreError> {
        super::session::commit(self.tx, &self.health).await
    }
}

fn user_facts_of(row: &impl Fields) -> Result<(Oid, ScimUserFacts), StoreError> {
    let facts = ScimUserFacts {
        id: row.field("id")?,
        active: row.field("active")?,
        usable: row.field("usable")?,
        resource: row.field("resource")?,
    };
    Ok((oid_of(row, "oid")?, facts))
}

/// What claim derivation needs of one SCIM user.
#[derive(Debug, Clone)]
pub struct ScimUserFacts {
    /// SCIM id.
    pub id: String,
    /// `active`.
    pub active: bool,
    /// Its oid attribute and address are usable.
    pub usable: bool,
    /// The body, for the address and name.
    pub resource: String,
}
