//! What an admin does, once for every front end: the CLI, the `/v1` write API (and the
//! console that will drive it) call these, so each change has one path into the reconcile
//! core and one set of checks.

pub mod members;

/// Why an admin action was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A field of the request is not valid; `field` names it as the caller spelt it.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// What the action names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The action does not apply in the current state; the message says what to do instead.
    #[error("{0}")]
    Conflict(String),
    /// The core refused or failed.
    #[error(transparent)]
    Reconcile(#[from] crate::reconcile::ReconcileError),
}

impl From<crate::store::StoreError> for AdminError {
    fn from(error: crate::store::StoreError) -> Self {
        AdminError::Reconcile(error.into())
    }
}
