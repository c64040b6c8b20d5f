//! c7sync keeps Context7 teamspace members in step with Microsoft Entra ID.
//!
//! source (Graph groups, CSV file, SCIM push, manual) → a snapshot or deltas of its claims
//! → `plan` (pure diff against the stored members) → `plan::guard` (mass removal, empty
//! snapshot) → `store::Store::apply` (members + claims + run + audit events in one
//! transaction) → `delivery` sends the events downstream, recording each batch it sends.

pub mod admin;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod daemon;
pub mod delivery;
pub mod domain;
pub mod http;
pub mod log;
pub mod lookup;
pub mod metrics;
pub mod outbound;
pub mod plan;
pub mod reconcile;
pub mod scim;
pub mod secret;
pub mod source;
pub mod store;
pub mod sync;
pub mod token;
