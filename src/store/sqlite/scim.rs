//! SCIM users on SQLite's C API, on the write session's own connection (`bulk.rs`): a batch of
//! creations is one hand-off to the connection's thread instead of one per user.

use rusqlite::{params, Connection};

use crate::clock::Millis;
use crate::store::scim::{refusal_or_failure, UserWrites, PUT_USER};
use crate::store::{StoreError, UserRow};

/// Inserts or replaces each user in order ([`crate::store::WriteSession::scim_put_users`]).
/// A statement refused by a unique index changes nothing (SQLite undoes it alone), so the
/// refusal goes in the list and the next user is written.
pub(in crate::store) fn put_users(
    connection: &Connection,
    teamspace_id: i64,
    users: &[&UserRow],
    now: Millis,
) -> Result<UserWrites, StoreError> {
    let mut put = connection.prepare(PUT_USER)?;
    let mut outcomes = Vec::with_capacity(users.len());
    for user in users {
        let oid = user.oid.map(|o| o.to_bytes());
        let stored = put
            .query_row(
                params![
                    teamspace_id,
                    user.id,
                    user.user_name,
                    user.user_name.to_lowercase(),
                    user.external_id,
                    user.display_name,
                    user.active,
                    oid.as_ref().map(|o| &o[..]),
                    user.member_problem,
                    user.resource,
                    now.0,
                ],
                |row| Ok((row.get::<_, i64>(0)?, Millis(row.get::<_, i64>(1)?))),
            )
            .map_err(StoreError::from);
        outcomes.push(refusal_or_failure(stored)?);
    }
    Ok(outcomes)
}
