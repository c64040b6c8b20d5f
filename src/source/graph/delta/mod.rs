//! Delta sync of a graph source: instead of listing every group each time, follow Graph's
//! delta links (`groups/delta` with `$select=members`, and `users/delta`), apply what changed
//! to a stored membership graph ([`tree`]), and work the snapshot out from it.
//!
//! A full listing sets the state up (and rebuilds it when a delta link expires, and
//! periodically): the transitive listing gives the users' attributes, a first `groups/delta`
//! round per 50 groups gives each group's direct members, down the whole tree. A delta round
//! is used only when every page of it was read; anything less fails the tick, and the next
//! one starts again from the same links, which Graph lets a client replay.

mod tree;
mod wire;

use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::page::{self, ObjectKind};
use super::{GraphError, GraphReader, Subject, GROUPS_AT_ONCE};
pub use tree::Classified;
pub use tree::MembershipGraph;
use tree::{Edges, MemberChange, Users};
use wire::{DeltaPage, GroupEntry, UserEntry, UsersPage};

/// Graph takes at most 50 `id eq` clauses in one `groups/delta` filter.
const GROUPS_PER_QUERY: usize = 50;
/// Graph takes at most 15 values in an `in` filter.
const USERS_PER_LOOKUP: usize = 15;

/// One `groups/delta` query: the groups its filter names, and where its next round starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupQuery {
    /// The groups in its `$filter`.
    pub groups: Vec<Uuid>,
    /// Its delta link.
    pub link: String,
}

/// Where every query's next round starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// The configured groups these links were built for: another list means a full listing.
    pub roots: Vec<Uuid>,
    /// The `users/delta` link.
    pub users: String,
    /// The `groups/delta` queries.
    pub groups: Vec<GroupQuery>,
}

/// What a delta-mode source keeps between ticks.
#[derive(Debug, Clone)]
pub struct DeltaState {
    /// The membership graph.
    pub graph: MembershipGraph,
    /// The delta links.
    pub links: Links,
}

/// How a tick read Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TickKind {
    /// Followed the delta links.
    Delta,
    /// Listed everything and set the delta state up again.
    Full,
}

/// What a tick read and changed: the run's `delta` details.
#[derive(Debug, Clone, Serialize)]
pub struct TickReport {
    /// Delta or full.
    pub kind: TickKind,
    /// Why a full listing was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_reason: Option<String>,
    /// Graph requests sent, retries included (token requests are Entra's, not counted).
    pub requests: u32,
    /// Pages read: delta rounds, and in a full listing the transitive listing's too.
    pub pages: u32,
    /// Member additions and removals that changed the graph.
    pub member_changes: u64,
    /// Users whose attributes changed, or who were deleted.
    pub user_changes: u64,
    /// Groups that joined the tree and are tracked now.
    pub groups_joined: u32,
    /// Groups that left the tree and are no longer tracked.
    pub groups_left: u32,
    /// Groups tracked after the tick.
    pub groups_tracked: u32,
    /// Users whose attributes were looked up (new in the tree).
    pub users_looked_up: u32,
    /// The edges changed: they must be saved.
    #[serde(skip)]
    pub edges_changed: bool,
    /// The users' attributes changed: they must be saved.
    #[serde(skip)]
    pub users_changed: bool,
}

impl TickReport {
    fn new(kind: TickKind, full_reason: Option<String>) -> Self {
        TickReport {
            kind,
            full_reason,
            requests: 0,
            pages: 0,
            member_changes: 0,
            user_changes: 0,
            groups_joined: 0,
            groups_left: 0,
            groups_tracked: 0,
            users_looked_up: 0,
            edges_changed: kind == TickKind::Full,
            users_changed: kind == TickKind::Full,
        }
    }
}

impl DeltaState {
    /// The links, as stored.
    pub fn links_json(&self) -> Result<String, String> {
        serde_json::to_string(&self.links).map_err(|e| format!("links: {e}"))
    }

    /// The edges, as stored.
    pub fn edges_bytes(&self) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(&(&self.graph.roots, &self.graph.edges)).map_err(|e| format!("edges: {e}"))
    }

    /// The users' attributes, as stored.
    pub fn users_bytes(&self) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(&self.graph.users).map_err(|e| format!("users: {e}"))
    }

    /// The state from its stored parts.
    pub fn decode(links: &str, edges: &[u8], users: &[u8]) -> Result<DeltaState, String> {
        let links: Links = serde_json::from_str(links).map_err(|e| format!("links: {e}"))?;
        let (roots, edges): (Vec<Uuid>, Edges) = postcard::from_bytes(edges).map_err(|e| format!("edges: {e}"))?;
        let users: Users = postcard::from_bytes(users).map_err(|e| format!("users: {e}"))?;
        Ok(DeltaState { graph: MembershipGraph { roots, edges, users }, links })
    }
}

/// What a transitive listing shows of one root: users with their attributes, and the
/// groups nested below it.
#[derive(Default)]
struct Listed {
    users: Vec<(Uuid, page::UserAttributes)>,
    groups: Vec<Uuid>,
    pages: u32,
}

/// A whole delta round.
struct Round<T> {
    items: Vec<T>,
    delta_link: String,
    pages: u32,
}

fn guid(subject: &Subject, page: u32, id: &str) -> Result<Uuid, GraphError> {
    crate::domain::parse_guid(id).map_err(|e| GraphError::Page {
        subject: subject.clone(),
        page,
        message: format!("object id `{id}` in a delta round: {e}"),
    })
}

impl GraphReader {
    /// A full listing that sets the delta state up from nothing: a first run, an expired
    /// delta link, a changed group list, or the periodic full reconcile.
    pub async fn delta_full(&self, reason: String) -> Result<(DeltaState, TickReport), GraphError> {
        let sent_before = self.requests_sent();
        let mut report = TickReport::new(TickKind::Full, Some(reason));
        // The users link first: an attribute changed while the rest is read then shows up in
        // the next round instead of being lost between the two.
        let users = self.read_round::<UserEntry>(&Subject::UsersDelta, self.users_latest_url()?).await?;
        let mut graph = MembershipGraph::new(&self.groups);
        let listed: Vec<Listed> = futures_util::stream::iter(self.groups.iter().copied())
            .map(|group| async move {
                let mut listed = Listed::default();
                listed.pages = self
                    .visit_transitive_members(group, |object| match object.kind_and_id() {
                        (ObjectKind::User, Some(id)) => listed.users.push((id, object.attributes())),
                        (ObjectKind::Group, Some(id)) => listed.groups.push(id),
                        _ => {}
                    })
                    .await?;
                Ok::<_, GraphError>(listed)
            })
            .buffer_unordered(GROUPS_AT_ONCE)
            .try_collect()
            .await?;
        // Every group the listing showed is tracked from the start, so the whole tree shares
        // as few queries as possible (one per 50 groups) instead of one per level.
        let mut groups = self.groups.clone();
        for listed in listed {
            report.pages += listed.pages;
            listed.users.into_iter().for_each(|(id, attributes)| graph.users.set(id, attributes));
            groups.extend(listed.groups);
        }
        groups.sort_unstable();
        groups.dedup();
        let mut queries = Vec::new();
        self.track(&mut graph, &groups, &mut queries, &mut report).await?;
        self.track_joined(&mut graph, &mut queries, &mut report).await?;
        graph.prune();
        self.look_up_missing_users(&mut graph, &mut report).await?;
        report.groups_tracked = graph.edges.groups.len() as u32;
        report.requests = self.requests_sent() - sent_before;
        let links = Links { roots: self.groups.clone(), users: users.delta_link, groups: queries };
        Ok((DeltaState { graph, links }, report))
    }

    /// Follows `state`'s delta links once and returns the state they lead to. `state` is
    /// consumed: on an error the caller reloads the saved one.
    pub async fn delta_advance(&self, state: DeltaState) -> Result<(DeltaState, TickReport), GraphError> {
        let sent_before = self.requests_sent();
        let DeltaState { mut graph, links } = state;
        let mut report = TickReport::new(TickKind::Delta, None);
        let mut queries = Vec::with_capacity(links.groups.len());
        for query in links.groups {
            let subject = Subject::GroupsDelta(query.groups.clone());
            let url = self.checked_link(&subject, 1, "the saved delta link", &query.link)?;
            let round = self.read_round::<GroupEntry>(&subject, url).await?;
            report.pages += round.pages;
            apply_group_round(&mut graph, &subject, round.items, &mut report)?;
            queries.push(GroupQuery { groups: query.groups, link: round.delta_link });
        }
        let subject = Subject::UsersDelta;
        let url = self.checked_link(&subject, 1, "the saved delta link", &links.users)?;
        let users = self.read_round::<UserEntry>(&subject, url).await?;
        report.pages += users.pages;
        for user in users.items {
            let id = guid(&subject, users.pages, &user.id)?;
            if user.removed.is_some() {
                if graph.delete_user(id) {
                    report.user_changes += 1;
                    (report.users_changed, report.edges_changed) = (true, true);
                }
            } else if let Some(attributes) = graph.users.by_id.get(&id) {
                // Users outside the tree are not kept: Graph reports the whole tenant.
                let mut merged = attributes.clone();
                merged.merge(&user.properties);
                if merged != *attributes {
                    graph.users.set(id, merged);
                    report.user_changes += 1;
                    report.users_changed = true;
                }
            }
        }
        // What follows walks the whole graph: only worth it when a round changed the tree.
        if report.edges_changed {
            self.track_joined(&mut graph, &mut queries, &mut report).await?;
            let left = graph.prune();
            if !left.is_empty() {
                report.groups_left = left.len() as u32;
                report.users_changed = true;
                // A query whose groups have all left has nothing more to say.
                queries.retain(|q| q.groups.iter().any(|g| graph.is_tracked(*g)));
            }
            self.look_up_missing_users(&mut graph, &mut report).await?;
        }
        report.groups_tracked = graph.edges.groups.len() as u32;
        report.requests = self.requests_sent() - sent_before;
        Ok((DeltaState { graph, links: Links { users: users.delta_link, groups: queries, ..links } }, report))
    }

    /// Starts tracking every group in the tree that is not tracked yet, with a first round per
    /// 50 of them, until the tree is closed (a nested group's first round may name more).
    async fn track_joined(
        &self,
        graph: &mut MembershipGraph,
        queries: &mut Vec<GroupQuery>,
        report: &mut TickReport,
    ) -> Result<(), GraphError> {
        loop {
            let joined = graph.joined();
            if joined.is_empty() {
                return Ok(());
            }
            if report.kind == TickKind::Delta {
                report.groups_joined += joined.len() as u32;
                (report.edges_changed, report.users_changed) = (true, true);
            }
            self.track(graph, &joined, queries, report).await?;
        }
    }

    /// Starts tracking `groups`: a first round per 50 of them gives their direct members.
    async fn track(
        &self,
        graph: &mut MembershipGraph,
        groups: &[Uuid],
        queries: &mut Vec<GroupQuery>,
        report: &mut TickReport,
    ) -> Result<(), GraphError> {
        for chunk in groups.chunks(GROUPS_PER_QUERY) {
            chunk.iter().for_each(|group| graph.track(*group));
            let subject = Subject::GroupsDelta(chunk.to_vec());
            let round = self.read_round::<GroupEntry>(&subject, self.groups_delta_url(chunk)?).await?;
            report.pages += round.pages;
            apply_group_round(graph, &subject, round.items, report)?;
            queries.push(GroupQuery { groups: chunk.to_vec(), link: round.delta_link });
        }
        Ok(())
    }

    /// Reads the attributes of users the tree names but c7sync has not seen (new members, or
    /// members of a group that just joined), 15 per request.
    async fn look_up_missing_users(
        &self,
        graph: &mut MembershipGraph,
        report: &mut TickReport,
    ) -> Result<(), GraphError> {
        let missing = graph.users_without_attributes();
        if missing.is_empty() {
            return Ok(());
        }
        // Owned chunks and URLs: a future borrowing from the closure's argument would not be
        // `Send` for every lifetime, which the daemon's spawned runs need.
        let urls: Vec<url::Url> =
            missing.chunks(USERS_PER_LOOKUP).map(|chunk| self.users_lookup_url(chunk)).collect::<Result<_, _>>()?;
        let found: Vec<UsersPage> = futures_util::stream::iter(urls)
            .map(|url| async move { self.fetch(&Subject::Users, 1, super::Target::Url(&url)).await })
            .buffer_unordered(GROUPS_AT_ONCE)
            .try_collect()
            .await?;
        for object in found.into_iter().flat_map(|page| page.value) {
            if let (ObjectKind::User, Some(id)) = object.kind_and_id() {
                graph.users.set(id, object.attributes());
            }
        }
        report.users_looked_up += missing.len() as u32;
        report.users_changed = true;
        let still = graph.users_without_attributes();
        match still.first() {
            Some(first) => Err(GraphError::NotYetReadable { count: still.len(), sample: *first }),
            None => Ok(()),
        }
    }

    /// Every page of one round, or the first error: a round is used whole or not at all.
    async fn read_round<T: serde::de::DeserializeOwned>(
        &self,
        subject: &Subject,
        first: url::Url,
    ) -> Result<Round<T>, GraphError> {
        let mut items = Vec::new();
        let mut url = first;
        let mut pages = 0;
        loop {
            pages += 1;
            let page: DeltaPage<T> = self.fetch(subject, pages, super::Target::Url(&url)).await?;
            items.extend(page.value);
            match (page.next_link, page.delta_link) {
                (Some(next), _) => url = self.checked_link(subject, pages, "@odata.nextLink", &next)?,
                (None, Some(delta)) => {
                    self.checked_link(subject, pages, "@odata.deltaLink", &delta)?;
                    return Ok(Round { items, delta_link: delta, pages });
                }
                (None, None) => {
                    return Err(GraphError::Page {
                        subject: subject.clone(),
                        page: pages,
                        message: "the page has neither @odata.nextLink nor @odata.deltaLink".into(),
                    })
                }
            }
        }
    }

    fn groups_delta_url(&self, groups: &[Uuid]) -> Result<url::Url, GraphError> {
        let filter = groups.iter().map(|g| format!("id eq '{g}'")).collect::<Vec<_>>().join(" or ");
        let mut url = self.api_url("groups/delta")?;
        url.query_pairs_mut().append_pair("$filter", &filter).append_pair("$select", "members");
        Ok(url)
    }

    fn users_latest_url(&self) -> Result<url::Url, GraphError> {
        let mut url = self.api_url("users/delta")?;
        url.query_pairs_mut().append_pair("$select", &page::SELECT[1..].join(",")).append_pair("$deltatoken", "latest");
        Ok(url)
    }

    fn users_lookup_url(&self, users: &[Uuid]) -> Result<url::Url, GraphError> {
        let ids = users.iter().map(|u| format!("'{u}'")).collect::<Vec<_>>().join(",");
        let mut url = self.api_url("users")?;
        url.query_pairs_mut()
            .append_pair("$filter", &format!("id in ({ids})"))
            .append_pair("$select", &page::SELECT.join(","));
        Ok(url)
    }
}

/// Applies a `groups/delta` round's entries, in order (a later entry for the same member is
/// the later state).
fn apply_group_round(
    graph: &mut MembershipGraph,
    subject: &Subject,
    entries: Vec<GroupEntry>,
    report: &mut TickReport,
) -> Result<(), GraphError> {
    for entry in entries {
        let group = guid(subject, 1, &entry.id)?;
        if entry.removed.is_some() {
            if graph.clear(group) {
                report.member_changes += 1;
                report.edges_changed = true;
            }
            continue;
        }
        for member in entry.members {
            let kind = page::object_kind(member.odata_type.as_deref());
            if kind == ObjectKind::Other {
                continue;
            }
            let change =
                MemberChange { group, member: guid(subject, 1, &member.id)?, kind, removed: member.removed.is_some() };
            if graph.apply(change) {
                report.member_changes += 1;
                report.edges_changed = true;
            }
        }
    }
    Ok(())
}
