//! What an admin does, once for every front end: the CLI, the `/v1` write API (and the
//! console that will drive it) call these, so each change has one path into the reconcile
//! core and one set of checks.

pub mod imports;
pub mod members;
pub mod runs;
pub mod scim_tokens;
pub mod teamspaces;

/// A field of an admin request, as the API spells it (front ends name it in their own words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The Entra object id.
    Oid,
    /// The email.
    Email,
    /// The display name.
    DisplayName,
    /// The source id of an import.
    Source,
    /// The uploaded or named file as a whole.
    File,
}

impl Field {
    /// The field's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Oid => "oid",
            Field::Email => "email",
            Field::DisplayName => "display_name",
            Field::Source => "source",
            Field::File => "file",
        }
    }
}

/// Why an admin action was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A field of the request is not valid; `field` names it as the caller spelt it.
    #[error("{}: {message}", field.as_str())]
    Invalid {
        /// The field.
        field: Field,
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
