//! SCIM users on PostgreSQL. A batch's users go in as one statement when no unique index
//! refuses any of them; otherwise one by one, each in a savepoint of its own, since PostgreSQL
//! aborts the whole transaction on any error outside one (SQLite: `sqlite::scim`).

use std::collections::{HashMap, HashSet};

use sqlx::{Postgres, Transaction};

use crate::clock::Millis;
use crate::store::scim::{refusal_or_failure, UserWrites, PUT_USER};
use crate::store::session::{RELEASE_SAVEPOINT, ROLLBACK_TO_SAVEPOINT, SAVEPOINT};
use crate::store::{StoreError, UserRow};

type PgTx = Transaction<'static, Postgres>;

/// Inserts the users whose ids are new and that no unique index refuses, in list order (so of
/// two users of the list with one userName, the first is written), each with a new `seq` after
/// the teamspace's last; returns the ids written with their versions and creation times. `$1`
/// teamspace, `$2` now, then one array per column.
const INSERT_NEW_USERS: &str = "INSERT INTO scim_users (teamspace_id, id, seq, user_name, user_name_key, \
         external_id, display_name, active, oid, member_problem, resource, version, created_at, updated_at) \
     SELECT $1, u.id, last.seq + u.n, u.user_name, u.user_name_key, u.external_id, u.display_name, u.active, \
         u.oid, u.member_problem, u.resource, 1, $2, $2 \
     FROM (SELECT coalesce(max(seq), 0) AS seq FROM scim_users WHERE teamspace_id = $1) last, \
         UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[], $9::bytea[], \
             $10::text[], $11::text[]) \
         WITH ORDINALITY AS u(id, user_name, user_name_key, external_id, display_name, active, oid, \
             member_problem, resource, n) \
     ORDER BY u.n \
     ON CONFLICT DO NOTHING \
     RETURNING id, version, created_at";

/// Inserts or replaces each user in order ([`crate::store::WriteSession::scim_put_users`]).
///
/// Most of a batch is new users that nothing refuses, so they all go in as one statement: one
/// round trip where a savepoint, the write and its release were three per user (BENCHMARKS.md,
/// SCIM on PostgreSQL). When that statement skips a user (a value a unique index holds, an id
/// already there), what it wrote is deleted again and the list goes one by one, each user in a
/// savepoint of its own, so every user gets the outcome, and a refusal the reason, it gets in a
/// list written in order.
pub(in crate::store) async fn put_users(
    tx: &mut PgTx,
    teamspace_id: i64,
    users: &[&UserRow],
    now: Millis,
) -> Result<UserWrites, StoreError> {
    if users.len() > 1 && distinct_ids(users) {
        let written = insert_new(tx, teamspace_id, users, now).await?;
        if written.len() == users.len() {
            return users
                .iter()
                .map(|user| match written.get(user.id.as_str()) {
                    Some(done) => Ok(Ok(*done)),
                    None => {
                        Err(StoreError::corrupt("scim_users", format!("user {} written but not returned", user.id)))
                    }
                })
                .collect();
        }
        let ids: Vec<&str> = written.keys().map(String::as_str).collect();
        sqlx::query(DELETE_USERS).bind(teamspace_id).bind(&ids).execute(&mut **tx).await?;
    }
    let mut outcomes = Vec::with_capacity(users.len());
    for user in users {
        outcomes.push(put_in_savepoint(tx, teamspace_id, user, now).await?);
    }
    Ok(outcomes)
}

/// Deletes the users `$2` (ids) of teamspace `$1`: undoes [`INSERT_NEW_USERS`] in its
/// transaction, so the list can be written again one by one.
const DELETE_USERS: &str = "DELETE FROM scim_users WHERE teamspace_id = $1 AND id = ANY($2)";

/// Whether no id repeats in the list (a list that writes one resource twice goes one by one).
fn distinct_ids(users: &[&UserRow]) -> bool {
    let mut seen = HashSet::with_capacity(users.len());
    users.iter().all(|user| seen.insert(user.id.as_str()))
}

async fn insert_new(
    tx: &mut PgTx,
    teamspace_id: i64,
    users: &[&UserRow],
    now: Millis,
) -> Result<HashMap<String, (i64, Millis)>, StoreError> {
    // Borrowed where the row has the value: a body can be kilobytes, and it is bound, not kept.
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(INSERT_NEW_USERS)
        .bind(teamspace_id)
        .bind(now.0)
        .bind(column(users, |u| u.id.as_str()))
        .bind(column(users, |u| u.user_name.as_str()))
        .bind(column(users, |u| u.user_name.to_lowercase()))
        .bind(column(users, |u| u.external_id.as_deref()))
        .bind(column(users, |u| u.display_name.as_deref()))
        .bind(column(users, |u| u.active))
        .bind(column(users, |u| u.oid.map(|o| o.to_bytes().to_vec())))
        .bind(column(users, |u| u.member_problem.as_deref()))
        .bind(column(users, |u| u.resource.as_str()))
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows.into_iter().map(|(id, version, created_at)| (id, (version, Millis(created_at)))).collect())
}

/// One value of each user, in list order: a column to bind as an array.
fn column<'u, T>(users: &[&'u UserRow], value: impl Fn(&'u UserRow) -> T) -> Vec<T> {
    users.iter().map(|user| value(user)).collect()
}

/// One user in a savepoint of its own: refused by a unique index, it leaves nothing behind and
/// its refusal is its outcome; any other error is the database's.
async fn put_in_savepoint(
    tx: &mut PgTx,
    teamspace_id: i64,
    user: &UserRow,
    now: Millis,
) -> Result<Result<(i64, Millis), StoreError>, StoreError> {
    sqlx::query(SAVEPOINT).execute(&mut **tx).await?;
    let stored = put_user(tx, teamspace_id, user, now).await;
    if stored.is_err() {
        sqlx::query(ROLLBACK_TO_SAVEPOINT).execute(&mut **tx).await?;
    }
    sqlx::query(RELEASE_SAVEPOINT).execute(&mut **tx).await?;
    refusal_or_failure(stored)
}

async fn put_user(tx: &mut PgTx, teamspace_id: i64, user: &UserRow, now: Millis) -> Result<(i64, Millis), StoreError> {
    let (version, created_at): (i64, i64) = sqlx::query_as(PUT_USER)
        .bind(teamspace_id)
        .bind(&user.id)
        .bind(&user.user_name)
        .bind(user.user_name.to_lowercase())
        .bind(&user.external_id)
        .bind(&user.display_name)
        .bind(user.active)
        .bind(user.oid.map(|o| o.to_bytes().to_vec()))
        .bind(&user.member_problem)
        .bind(&user.resource)
        .bind(now.0)
        .fetch_one(&mut **tx)
        .await?;
    Ok((version, Millis(created_at)))
}
