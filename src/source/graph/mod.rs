//! Microsoft Graph: the transitive user members of Entra groups, as one snapshot of claims.
//!
//! Requests go through graph-rs-sdk with our own token provider ([`token`]). The SDK's pagers
//! stop silently on a throttled page, so the page loop is ours: every page's status is
//! checked, a throttled or failed page is retried within bounds ([`retry`]), and a page that
//! still cannot be read fails the whole listing — a partial listing must never become a
//! snapshot that removes the members it missed (DESIGN §2.2).

pub mod delta;
mod page;
mod retry;
mod token;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use graph_rs_sdk::http::Method;
use graph_rs_sdk::{Graph, GraphClientConfiguration, ODataQuery};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::GraphSettings;
use crate::domain::TenantId;
use crate::plan::DesiredClaim;

pub use page::UserFilter;
pub use retry::RetryPolicy;
pub use token::{Secret, TokenError, TokenProvider, TokenRequest};

/// Groups listed at once per source.
const GROUPS_AT_ONCE: usize = 4;
/// Graph's maximum page size for directory objects.
const PAGE_SIZE: &str = "999";
/// Unusable users named in a listing's summary; the count covers all.
const UNUSABLE_SAMPLE: usize = 20;

/// Why a listing is incomplete. Every variant means: use nothing of it.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The client-secret variable is not set.
    #[error("environment variable {0} (the client secret) is not set or empty")]
    MissingSecret(String),
    /// No token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// 403.
    #[error(
        "Graph refused to read {subject} ({detail}): the app registration needs the application \
         permissions GroupMember.Read.All and User.Read.All, with admin consent"
    )]
    Forbidden {
        /// What was read.
        subject: Subject,
        /// Graph's error code and message.
        detail: String,
    },
    /// 404 on a group.
    #[error("group {group} does not exist in tenant {tenant} ({detail}); check `groups` in the config")]
    GroupNotFound {
        /// The group.
        group: uuid::Uuid,
        /// The teamspace's tenant.
        tenant: TenantId,
        /// Graph's error code and message.
        detail: String,
    },
    /// Graph no longer holds the delta state a delta link stands for (`410 Gone`,
    /// `syncStateNotFound`, `resyncRequired`): only a full listing can start again.
    #[error("Graph no longer holds the delta state of {subject} ({detail})")]
    Expired {
        /// The delta query.
        subject: Subject,
        /// Graph's status, error code and message.
        detail: String,
    },
    /// Users the groups name that Graph cannot show yet: directory replication has not
    /// caught up, and a snapshot without them would be built on partial knowledge.
    #[error(
        "{count} new group members are not readable in Graph yet (replication delay), e.g. {sample}; \
         the next run tries again from the same delta links"
    )]
    NotYetReadable {
        /// How many.
        count: usize,
        /// One of them.
        sample: uuid::Uuid,
    },
    /// A page that failed for good, or an answer c7sync cannot use.
    #[error("page {page} of {subject}: {message}")]
    Page {
        /// What was read.
        subject: Subject,
        /// 1-based page number.
        page: u32,
        /// What went wrong, with the number of tries.
        message: String,
    },
    /// The configured URLs do not make a request URL.
    #[error("cannot build a Graph URL: {0}")]
    Url(String),
}

/// What a request reads, as errors and logs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A group's transitive members.
    Group(uuid::Uuid),
    /// The members delta query over these groups.
    GroupsDelta(Vec<uuid::Uuid>),
    /// The users delta query.
    UsersDelta,
    /// A look-up of users by id.
    Users,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Group(group) => write!(f, "group {group}"),
            Subject::GroupsDelta(groups) => match groups.as_slice() {
                [only] => write!(f, "the members delta query of group {only}"),
                [first, rest @ ..] => write!(f, "the members delta query of group {first} and {} more", rest.len()),
                [] => write!(f, "the members delta query"),
            },
            Subject::UsersDelta => write!(f, "the users delta query"),
            Subject::Users => write!(f, "the user look-up"),
        }
    }
}

/// What a listing held.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListingSummary {
    /// Groups listed.
    pub groups: u32,
    /// Pages read, over all groups.
    pub pages: u32,
    /// Member objects seen, users or not, before de-duplication across groups.
    pub objects: u64,
    /// Distinct users claimed.
    pub users: u64,
    /// Users found in more than one group (claimed once).
    pub duplicates: u64,
    /// Groups, devices, contacts and service principals.
    pub not_users: u64,
    /// `accountEnabled: false`, skipped.
    pub disabled: u64,
    /// Guests, skipped (only with `include_guests = false`).
    pub guests: u64,
    /// Users without a GUID id or a usable address.
    pub unusable: u64,
    /// Up to 20 of them: `{id, reason}`.
    pub unusable_sample: Vec<UnusableUser>,
    /// Time spent fetching and parsing, in milliseconds.
    pub fetch_ms: u64,
}

/// A user c7sync could not provision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnusableUser {
    /// Graph object id as given.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// A complete listing: every page of every group was read.
#[derive(Debug, Clone)]
pub struct Listing {
    /// One claim per distinct user, sorted by oid.
    pub claims: Vec<DesiredClaim>,
    /// Counts.
    pub summary: ListingSummary,
}

/// Lists a graph source's groups. Keep one per source: its token is reused across runs.
#[derive(Debug, Clone)]
pub struct GraphReader {
    client: Graph,
    tokens: TokenProvider,
    groups: Vec<uuid::Uuid>,
    tenant: TenantId,
    filter: UserFilter,
    policy: RetryPolicy,
    /// Scheme, host and port of `graph_url`: a next link anywhere else is refused, so the
    /// token is only ever sent to Graph.
    origin: url::Origin,
    /// `graph_url` + `v1.0/`, for the requests c7sync builds itself.
    api: url::Url,
    /// Requests sent, for run details and the benchmark.
    requests: Arc<AtomicU32>,
}

/// `base` with a trailing slash, so `join` appends instead of replacing the last segment.
fn as_folder(base: &url::Url) -> url::Url {
    let mut folder = base.clone();
    if !folder.path().ends_with('/') {
        folder.set_path(&format!("{}/", base.path()));
    }
    folder
}

impl GraphReader {
    /// A reader for `settings` in `tenant`; the client secret is read from the environment now.
    pub fn from_env(settings: &GraphSettings, tenant: TenantId, policy: RetryPolicy) -> Result<Self, GraphError> {
        let secret = crate::secret::from_env(&settings.client_secret_env)
            .ok_or_else(|| GraphError::MissingSecret(settings.client_secret_env.clone()))?;
        Self::new(settings, tenant, Secret::new(secret), policy)
    }

    /// A reader for `settings` in `tenant` with `secret`.
    pub fn new(
        settings: &GraphSettings,
        tenant: TenantId,
        secret: Secret,
        policy: RetryPolicy,
    ) -> Result<Self, GraphError> {
        let url_error = |e: url::ParseError| GraphError::Url(e.to_string());
        let endpoint =
            as_folder(&settings.authority_url).join(&format!("{tenant}/oauth2/v2.0/token")).map_err(url_error)?;
        let scope = format!("{}/.default", settings.graph_url.origin().ascii_serialization());
        let http = crate::outbound::client(policy.request_timeout, settings.authority_url.scheme() == "https")
            .map_err(|e| GraphError::Url(e.to_string()))?;
        let tokens = TokenProvider::new(
            TokenRequest { endpoint, client_id: settings.client_id.to_string(), secret, scope },
            http,
        );
        let configuration = GraphClientConfiguration::new()
            .client_application(tokens.clone())
            .timeout(policy.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            // Plain http is only ever configured for a loopback host (checked with the config).
            .https_only(settings.graph_url.scheme() == "https");
        let mut client = Graph::from(configuration);
        client.use_test_endpoint(&as_folder(&settings.graph_url).join("v1.0").map_err(url_error)?);
        let api = as_folder(&settings.graph_url).join("v1.0/").map_err(url_error)?;
        Ok(GraphReader {
            client,
            tokens,
            groups: settings.groups.clone(),
            tenant,
            filter: UserFilter { include_disabled: settings.include_disabled, include_guests: settings.include_guests },
            policy,
            origin: settings.graph_url.origin(),
            api,
            requests: Arc::new(AtomicU32::new(0)),
        })
    }

    /// Lists every group's transitive users (a few groups at a time) and returns their union,
    /// or the first error: then nothing of the listing is used.
    pub async fn list(&self) -> Result<Listing, GraphError> {
        let started = Instant::now();
        let listings: Vec<GroupListing> = futures_util::stream::iter(self.groups.iter().copied())
            .map(|group| self.list_group(group))
            .buffer_unordered(GROUPS_AT_ONCE)
            .try_collect()
            .await?;
        let mut summary = ListingSummary { groups: self.groups.len() as u32, ..ListingSummary::default() };
        let mut claims = Vec::with_capacity(listings.iter().map(|l| l.claims.len()).sum());
        for listing in listings {
            summary.pages += listing.pages;
            summary.objects += listing.objects;
            summary.not_users += listing.not_users;
            summary.disabled += listing.disabled;
            summary.guests += listing.guests;
            summary.unusable += listing.unusable.len() as u64;
            let room = UNUSABLE_SAMPLE.saturating_sub(summary.unusable_sample.len());
            summary.unusable_sample.extend(listing.unusable.into_iter().take(room));
            claims.extend(listing.claims);
        }
        claims.sort_unstable_by_key(|c: &DesiredClaim| c.oid);
        let before = claims.len();
        claims.dedup_by_key(|c| c.oid);
        summary.duplicates = (before - claims.len()) as u64;
        summary.users = claims.len() as u64;
        summary.fetch_ms = started.elapsed().as_millis() as u64;
        Ok(Listing { claims, summary })
    }

    async fn list_group(&self, group: uuid::Uuid) -> Result<GroupListing, GraphError> {
        let mut listing = GroupListing::default();
        listing.pages = self
            .visit_transitive_members(group, |object| {
                listing.objects += 1;
                match object.into_member(self.filter) {
                    page::Member::Claimed(claim) => listing.claims.push(claim),
                    page::Member::NotAUser => listing.not_users += 1,
                    page::Member::Disabled => listing.disabled += 1,
                    page::Member::Guest => listing.guests += 1,
                    page::Member::Unusable { id, reason } => listing.unusable.push(UnusableUser { id, reason }),
                }
            })
            .await?;
        tracing::debug!(%group, pages = listing.pages, users = listing.claims.len(), "listed group");
        Ok(listing)
    }

    /// Reads every page of `group`'s transitive members, handing each object to `visit`;
    /// returns the number of pages.
    async fn visit_transitive_members(
        &self,
        group: uuid::Uuid,
        mut visit: impl FnMut(page::DirectoryObject),
    ) -> Result<u32, GraphError> {
        let subject = Subject::Group(group);
        let mut pages = 0;
        let mut next: Option<url::Url> = None;
        loop {
            let number = pages + 1;
            let target = match &next {
                None => Target::TransitiveMembers(group),
                Some(url) => Target::Url(url),
            };
            let page: page::Page = self.fetch(&subject, number, target).await?;
            pages = number;
            page.value.into_iter().for_each(&mut visit);
            match page.next_link {
                None => return Ok(pages),
                Some(link) => next = Some(self.checked_link(&subject, number, "@odata.nextLink", &link)?),
            }
        }
    }

    /// `link` as a URL on the configured Graph origin, so the token is only ever sent to Graph.
    fn checked_link(&self, subject: &Subject, page: u32, name: &str, link: &str) -> Result<url::Url, GraphError> {
        let refuse = |why: String| GraphError::Page { subject: subject.clone(), page, message: why };
        let url = url::Url::parse(link).map_err(|e| refuse(format!("{name} `{link}` is not a URL: {e}")))?;
        if url.origin() != self.origin {
            return Err(refuse(format!(
                "{name} points to {}, not to the configured graph_url; refusing to send the token there",
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// A URL under the configured Graph's `v1.0/`.
    fn api_url(&self, path: &str) -> Result<url::Url, GraphError> {
        self.api.join(path).map_err(|e| GraphError::Url(e.to_string()))
    }

    /// One page (or answer) of `subject`, retried within the policy.
    async fn fetch<T: DeserializeOwned>(
        &self,
        subject: &Subject,
        number: u32,
        target: Target<'_>,
    ) -> Result<T, GraphError> {
        let fail = |message: String| GraphError::Page { subject: subject.clone(), page: number, message };
        let mut refreshed_token = false;
        let mut failures = 0;
        loop {
            // Asked here rather than left to the SDK so that token errors keep their meaning
            // (the SDK would wrap them); the SDK then finds this token in the shared cache.
            let token = self.tokens.token().await?;
            let (problem, retry_after) = match self.request(target).await {
                Err(problem) => (problem, None),
                Ok(answer) => {
                    match self.judge(subject, number, matches!(target, Target::TransitiveMembers(_)), &answer) {
                        Verdict::Page(page) => return Ok(page),
                        Verdict::Refused(error) => return Err(error),
                        Verdict::TokenRejected if !refreshed_token => {
                            // An expired or revoked token: one fresh token, then try again.
                            tracing::info!(%subject, page = number, "Graph rejected the token; acquiring a new one");
                            self.tokens.reject(&token).await;
                            refreshed_token = true;
                            continue;
                        }
                        Verdict::TokenRejected => {
                            let detail = graph_error_detail(&answer.body);
                            return Err(fail(format!("Graph rejected a freshly acquired token (401 {detail})")));
                        }
                        Verdict::Retry(problem) => (problem, answer.retry_after),
                    }
                }
            };
            failures += 1;
            if failures >= self.policy.attempts {
                return Err(fail(format!("{problem}; gave up after {failures} tries")));
            }
            let wait = self.policy.wait(failures, retry_after);
            tracing::info!(%subject, page = number, attempt = failures, error = %problem, wait_ms = wait.as_millis() as u64, "retrying a Graph request");
            tokio::time::sleep(wait).await;
        }
    }

    /// One request; `Err` says how the exchange itself failed.
    async fn request(&self, target: Target<'_>) -> Result<Answer, String> {
        let request = match target {
            Target::TransitiveMembers(group) => self
                .client
                .group(group.to_string())
                .transitive_members()
                .list_transitive_members()
                .select(&page::SELECT)
                .top(PAGE_SIZE),
            Target::Url(url) => {
                let mut request = self.client.custom(Method::GET, None);
                *request.as_mut() = url.clone();
                request
            }
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| format!("request failed: {}", describe_graph_failure(&e)))?;
        let status = response.status();
        let retry_after = retry::retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the response failed: {}", crate::outbound::describe(&e)))?;
        Ok(Answer { status, retry_after, body })
    }

    /// Which users the source wants.
    pub fn user_filter(&self) -> UserFilter {
        self.filter
    }

    /// Requests sent so far, retries included.
    pub fn requests_sent(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    /// What Graph's answer means for the listing.
    fn judge<T: DeserializeOwned>(
        &self,
        subject: &Subject,
        number: u32,
        first_page: bool,
        answer: &Answer,
    ) -> Verdict<T> {
        let detail = || graph_error_detail(&answer.body);
        let code = graph_error_code(&answer.body);
        match answer.status {
            StatusCode::OK => match serde_json::from_slice::<T>(&answer.body) {
                Ok(page) => Verdict::Page(page),
                Err(e) => Verdict::Retry(format!("the response is not a Graph collection page: {e}")),
            },
            StatusCode::UNAUTHORIZED => Verdict::TokenRejected,
            StatusCode::FORBIDDEN => {
                Verdict::Refused(GraphError::Forbidden { subject: subject.clone(), detail: detail() })
            }
            StatusCode::NOT_FOUND if first_page => match subject {
                Subject::Group(group) => {
                    Verdict::Refused(GraphError::GroupNotFound { group: *group, tenant: self.tenant, detail: detail() })
                }
                _ => Verdict::Refused(GraphError::Page {
                    subject: subject.clone(),
                    page: number,
                    message: format!("HTTP 404 ({})", detail()),
                }),
            },
            // A 410 carries a `Location` to restart one query from scratch; c7sync rebuilds the
            // whole tree instead, since the other queries' state was built on this one's.
            StatusCode::GONE => Verdict::Refused(GraphError::Expired {
                subject: subject.clone(),
                detail: format!("HTTP 410, {}", detail()),
            }),
            _ if matches!(code.as_deref(), Some("syncStateNotFound" | "resyncRequired" | "syncStateInvalid")) => {
                Verdict::Refused(GraphError::Expired {
                    subject: subject.clone(),
                    detail: format!("HTTP {}, {}", answer.status.as_u16(), detail()),
                })
            }
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Verdict::Retry(format!("HTTP {} ({})", answer.status, detail())),
            other => Verdict::Refused(GraphError::Page {
                subject: subject.clone(),
                page: number,
                message: format!("unexpected HTTP {other} ({})", detail()),
            }),
        }
    }
}

/// What one request reads.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// The first page of a group's transitive members, built by the SDK.
    TransitiveMembers(uuid::Uuid),
    /// A URL: a next or delta link Graph gave, or one built by c7sync.
    Url(&'a url::Url),
}

/// Graph's answer to one page request.
struct Answer {
    status: StatusCode,
    retry_after: Option<std::time::Duration>,
    body: hyper::body::Bytes,
}

/// What an answer means.
enum Verdict<T> {
    /// The page.
    Page(T),
    /// The token was refused: a fresh one may do.
    TokenRejected,
    /// Worth another try (after the wait Graph asked for, if it did), for this reason.
    Retry(String),
    /// No retry will help.
    Refused(GraphError),
}

#[derive(Debug, Default)]
struct GroupListing {
    claims: Vec<DesiredClaim>,
    pages: u32,
    objects: u64,
    not_users: u64,
    disabled: u64,
    guests: u64,
    unusable: Vec<UnusableUser>,
}

/// The `code` of Graph's `{"error": {"code", ...}}`.
fn graph_error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("error")?.get("code")?.as_str().map(str::to_owned)
}

/// Graph's `{"error": {"code", "message"}}` as `code: message`, else the start of the body.
fn graph_error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error }) => format!("{}: {}", error.code, error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned();
            if text.is_empty() {
                "empty body".to_owned()
            } else {
                text
            }
        }
    }
}

fn describe_graph_failure(error: &graph_rs_sdk::GraphFailure) -> String {
    match error {
        graph_rs_sdk::GraphFailure::ReqwestError(e) => crate::outbound::describe(e),
        other => other.to_string(),
    }
}
