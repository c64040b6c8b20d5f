//! The daemon's router in-process with the token check configured from a config text: a real
//! HTTP server on 127.0.0.1, a real SQLite file, keys fetched from a [`super::fake_entra`].

use std::collections::HashMap;
use std::sync::Arc;

use c7sync::api::ApiState;
use c7sync::clock::{Clock, Millis};
use c7sync::http::{router, AppState};
use c7sync::lookup::MemberLookup;
use c7sync::metrics::Metrics;
use c7sync::reconcile::Reconciler;
use c7sync::scim::ScimState;
use c7sync::store::{Store, StoreSettings};
use c7sync::token::{KeySettings, TokenService};
use tempfile::TempDir;

pub struct TokenApp {
    pub dir: TempDir,
    pub reconciler: Reconciler,
    pub base: String,
    pub client: reqwest::Client,
    pub tokens: Arc<TokenService>,
    pub clock: Clock,
    _server: tokio::task::JoinHandle<()>,
}

impl TokenApp {
    /// Serves `config` (its teamspaces stored as `Context::load` stores them), with `admin` as
    /// the admin token, key rules `settings` and time from `clock`.
    pub async fn start(config: &str, admin: Option<&str>, settings: KeySettings, clock: Clock) -> TokenApp {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("c7sync.toml");
        std::fs::write(&config_path, config).unwrap();
        let config = c7sync::config::parse(&config_path, config).unwrap();
        let url = format!("sqlite://{}", dir.path().join("c7sync.db").display());
        let store = Store::open(&StoreSettings::new(&url)).await.unwrap();
        let specs: Vec<_> = config.teamspaces.iter().map(|t| t.spec()).collect();
        store.sync_teamspaces(&specs, Millis::now()).await.unwrap();
        let mut ids = HashMap::new();
        for teamspace in &config.teamspaces {
            ids.insert(teamspace.name.to_string(), store.teamspace(teamspace.name.as_str()).await.unwrap().id);
        }
        let members = MemberLookup::new(store.clone());
        tokio::spawn(members.clone().keep_fresh());
        let metrics = Metrics::new();
        let tokens = Arc::new(
            TokenService::for_config(&config, &ids, members.clone(), settings, clock.clone(), metrics.clone()).unwrap(),
        );
        let admin = admin.map(c7sync::secret::SecretHash::of);
        let reconciler = Reconciler::new(store.clone());
        let api = ApiState::new(reconciler.clone(), Arc::new(config), admin, ids, members, tokens.clone());
        let scim = ScimState::new(reconciler.clone(), HashMap::new());
        let app = router(AppState::new(store, metrics), scim, Some(api));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TokenApp {
            dir,
            reconciler,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            tokens,
            clock,
            _server: server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /v1/teamspaces/{teamspace}/authorize` with `token` as the bearer token.
    pub async fn authorize(&self, teamspace: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(&format!("/v1/teamspaces/{teamspace}/authorize")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }
}
