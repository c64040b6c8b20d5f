//! Delta pages as Graph sends them: `groups/delta` with `members@delta`, and `users/delta`.

use serde::Deserialize;

/// One page of a delta round: a next link on every page but the last, which carries the
/// delta link for the next round instead.
#[derive(Debug, Deserialize)]
pub struct DeltaPage<T> {
    /// The changed objects on this page.
    pub value: Vec<T>,
    /// The next page of this round.
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    /// Where the next round starts; only on the last page.
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

/// A group in a `groups/delta` round. A group with many member changes comes back several
/// times in a round, each time with some of them.
#[derive(Debug, Deserialize)]
pub struct GroupEntry {
    /// The group's id.
    pub id: String,
    /// Member changes: additions, and removals marked `@removed`.
    #[serde(rename = "members@delta", default)]
    pub members: Vec<MemberEntry>,
    /// Present when the group itself was deleted.
    #[serde(rename = "@removed")]
    pub removed: Option<serde_json::Value>,
}

/// One entry of `members@delta`: only the member's type and id.
#[derive(Debug, Deserialize)]
pub struct MemberEntry {
    /// `#microsoft.graph.user`, `#microsoft.graph.group`, …
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    /// The member's id.
    pub id: String,
    /// Present when the member left the group.
    #[serde(rename = "@removed")]
    pub removed: Option<serde_json::Value>,
}

/// A user in a `users/delta` round: its id, `@removed` if deleted, and at least the
/// properties that changed (kept as given, to tell an absent property from a cleared one).
#[derive(Debug, Deserialize)]
pub struct UserEntry {
    /// The user's id.
    pub id: String,
    /// Present when the user was deleted.
    #[serde(rename = "@removed")]
    pub removed: Option<serde_json::Value>,
    /// Everything else.
    #[serde(flatten)]
    pub properties: serde_json::Map<String, serde_json::Value>,
}

/// A page of `GET /users?$filter=id in (…)`.
#[derive(Debug, Deserialize)]
pub struct UsersPage {
    /// The users found; ids not found are simply absent.
    pub value: Vec<super::super::page::DirectoryObject>,
}
