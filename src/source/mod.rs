//! Sources turn outside input into what the reconcile core takes: a snapshot or deltas of
//! claims. They know nothing of the store, the planner's internals, or each other.

pub mod csv;
pub mod graph;
