//! SCIM users on PostgreSQL: each user of a batch in a savepoint of its own, since PostgreSQL
//! aborts the whole transaction on any error outside one (SQLite: `sqlite::scim`).

use sqlx::{Postgres, Transaction};

use crate::clock::Millis;
use crate::store::scim::{refusal_or_failure, UserWrites, PUT_USER};
use crate::store::session::{RELEASE_SAVEPOINT, ROLLBACK_TO_SAVEPOINT, SAVEPOINT};
use crate::store::{StoreError, UserRow};

/// Inserts or replaces each user in order ([`crate::store::WriteSession::scim_put_users`]).
/// A user refused by a unique index is rolled back to its savepoint, its refusal goes in the
/// list, and the next user is written.
pub(in crate::store) async fn put_users(
    tx: &mut Transaction<'static, Postgres>,
    teamspace_id: i64,
    users: &[&UserRow],
    now: Millis,
) -> Result<UserWrites, StoreError> {
    let mut outcomes = Vec::with_capacity(users.len());
    for user in users {
        sqlx::query(SAVEPOINT).execute(&mut **tx).await?;
        let stored = put_user(tx, teamspace_id, user, now).await;
        if stored.is_err() {
            sqlx::query(ROLLBACK_TO_SAVEPOINT).execute(&mut **tx).await?;
        }
        sqlx::query(RELEASE_SAVEPOINT).execute(&mut **tx).await?;
        outcomes.push(refusal_or_failure(stored)?);
    }
    Ok(outcomes)
}

async fn put_user(
    tx: &mut Transaction<'static, Postgres>,
    teamspace_id: i64,
    user: &UserRow,
    now: Millis,
) -> Result<(i64, Millis), StoreError> {
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
