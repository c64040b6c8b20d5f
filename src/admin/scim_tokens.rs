//! SCIM bearer tokens: the Secret Token an Entra admin pastes into the enterprise app's
//! provisioning page. The value is returned once; only its hash is stored.

use super::AdminError;
use crate::clock::Millis;
use crate::config::TeamspaceConfig;
use crate::scim::token;
use crate::store::Store;

/// A token just created: `value` is shown to the admin once and never again.
#[derive(Debug, serde::Serialize)]
pub struct CreatedToken {
    /// The token's id (also the number after `c7s_` in its value).
    pub id: i64,
    /// The bearer value.
    pub value: String,
}

/// Creates a token for a teamspace that accepts SCIM provisioning.
pub async fn create(
    store: &Store,
    teamspace: &TeamspaceConfig,
    teamspace_id: i64,
    label: &str,
) -> Result<CreatedToken, AdminError> {
    if !super::teamspaces::accepts_scim(teamspace) {
        return Err(AdminError::Conflict(format!(
            "teamspace {} has no `kind = \"scim\"` source; add one to its config to accept SCIM provisioning",
            teamspace.name
        )));
    }
    let (secret, hash) =
        token::new_secret().map_err(|e| AdminError::Conflict(format!("no randomness from the OS: {e}")))?;
    let id = store.create_scim_token(teamspace_id, label, &hash, Millis::now()).await?;
    Ok(CreatedToken { id, value: token::format(id, &secret) })
}

/// Revokes token `id` of a teamspace; requests with it are refused within a second. A token of
/// another teamspace is not found here: each teamspace's admin revokes only its own.
pub async fn revoke(store: &Store, teamspace: &str, teamspace_id: i64, id: i64) -> Result<(), AdminError> {
    if !store.list_scim_tokens(Some(teamspace_id)).await?.iter().any(|t| t.id == id) {
        return Err(AdminError::NotFound(format!("{teamspace} has no SCIM token {id}")));
    }
    store.revoke_scim_token(id, Millis::now()).await?;
    Ok(())
}
