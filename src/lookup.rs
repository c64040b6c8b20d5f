//! Member look-ups on the hot paths (`GET /v1/…/members/{oid}`, the token check's stage 2):
//! answers cached per teamspace and dropped as soon as the teamspace's version moves, which
//! every run of any process bumps. A change is seen within [`CACHE_CHECK_INTERVAL`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;

use crate::domain::Oid;
use crate::store::{MemberRecord, Store, StoreError};

/// How often the cache checks whether a teamspace changed.
pub const CACHE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// A provisioned member, with its `/v1` JSON encoded once.
#[derive(Debug)]
pub struct Found {
    /// The member.
    pub record: MemberRecord,
    /// `record` as the API sends it.
    pub json: Bytes,
}

/// The cache over the store.
#[derive(Clone)]
pub struct MemberLookup {
    store: Store,
    cache: Arc<RwLock<HashMap<i64, TeamspaceCache>>>,
}

/// The answers for one teamspace at one version; `None` is a cached "not provisioned".
#[derive(Default)]
struct TeamspaceCache {
    version: i64,
    members: HashMap<Oid, Option<Arc<Found>>>,
}

impl MemberLookup {
    /// An empty cache; answers are cached only while [`MemberLookup::keep_fresh`] runs.
    pub fn new(store: Store) -> Self {
        MemberLookup { store, cache: Arc::default() }
    }

    /// Drops the answers of teamspaces whose version moved, every [`CACHE_CHECK_INTERVAL`].
    /// While the versions cannot be read, nothing is cached: a change would go unseen, so
    /// every look-up goes to the database (and fails with it, rather than answer from a list
    /// that may have lost a member since).
    pub async fn keep_fresh(self) {
        let mut failing = false;
        loop {
            match self.store.teamspace_versions().await {
                Ok(versions) => {
                    if failing {
                        tracing::info!("teamspace versions readable again; member look-ups are cached again");
                        failing = false;
                    }
                    if let Ok(mut cache) = self.cache.write() {
                        for (teamspace, version) in versions {
                            let entry = cache.entry(teamspace).or_default();
                            if entry.version != version {
                                *entry = TeamspaceCache { version, members: HashMap::new() };
                            }
                        }
                    }
                }
                // Once per outage: with no entries left, `remember` caches nothing until the
                // versions are read again.
                Err(error) if !failing => {
                    if let Ok(mut cache) = self.cache.write() {
                        cache.clear();
                    }
                    tracing::warn!(%error, "cannot read teamspace versions; look-ups go to the database");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(CACHE_CHECK_INTERVAL).await;
        }
    }

    /// The member `oid` of the teamspace, or `None` when not provisioned.
    pub async fn find(&self, teamspace: i64, oid: Oid) -> Result<Option<Arc<Found>>, StoreError> {
        if let Some(answer) = self.cached(teamspace, oid) {
            return Ok(answer);
        }
        let version = self.version(teamspace);
        let answer = self.store.member(teamspace, oid).await?.map(|record| {
            let json = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
            Arc::new(Found { record, json })
        });
        self.remember(teamspace, version, oid, answer.clone());
        Ok(answer)
    }

    fn cached(&self, teamspace: i64, oid: Oid) -> Option<Option<Arc<Found>>> {
        self.cache.read().ok()?.get(&teamspace)?.members.get(&oid).cloned()
    }

    fn remember(&self, teamspace: i64, version_before: Option<i64>, oid: Oid, answer: Option<Arc<Found>>) {
        if let Ok(mut cache) = self.cache.write() {
            // Only if no change was seen since the read began; else the answer may be stale.
            if let Some(entry) = cache.get_mut(&teamspace).filter(|e| Some(e.version) == version_before) {
                entry.members.insert(oid, answer);
            }
        }
    }

    fn version(&self, teamspace: i64) -> Option<i64> {
        self.cache.read().ok()?.get(&teamspace).map(|e| e.version)
    }
}
