//! The admin console on a real `c7sync serve`: sessions and CSRF at the HTTP level, and the
//! admin's whole journey in Debian's chromium (tests/console/journey.mjs, playwright-core).

use std::path::Path;
use std::process::Command;

use c7sync::clock::Millis;
use c7sync::console::session::{SessionKeys, SESSION_COOKIE, SESSION_LIFETIME_MS};
use c7sync::secret::SecretHash;
use reqwest::StatusCode;

use crate::support::daemon::Daemon;
use crate::support::*;

const ADMIN_ENV: &str = "C7SYNC_ADMIN_TOKEN";
const ADMIN: &str = "console-admin-token-0f9d2c";
const SCIM: &str = "\n  [[teamspaces.sources]]\n  kind = \"scim\"\n";

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A browser's view of the console: its cookies, and every page and `Location` it was given.
struct Browser {
    client: reqwest::Client,
    daemon: Daemon,
    cookies: Vec<(String, String)>,
    seen: Vec<String>,
}

impl Browser {
    fn new(daemon: Daemon) -> Browser {
        Browser { client: client(), daemon, cookies: Vec::new(), seen: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn take(&mut self, response: reqwest::Response) -> (StatusCode, String, String) {
        let status = response.status();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap().to_owned();
            self.seen.push(set.clone());
            let (pair, _) = set.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = response.text().await.unwrap();
        self.seen.push(location.clone());
        self.seen.push(body.clone());
        (status, location, body)
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String, String) {
        let response =
            self.client.get(self.daemon.url(path)).header("cookie", self.cookie_header()).send().await.unwrap();
        self.take(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, String) {
        let response = self
            .client
            .post(self.daemon.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.take(response).await
    }

    async fn sign_in(&mut self) -> String {
        let (status, _, form) = self.get("/console/sign-in").await;
        assert_eq!(status, StatusCode::OK);
        let csrf = csrf_of(&form);
        let (status, location, _) = self.post("/console/sign-in", &[("csrf", &csrf), ("token", ADMIN)]).await;
        assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"));
        let (status, _, page) = self.get("/console").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        csrf_of(&page)
    }
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..at + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_and_csrf_tokens_guard_every_change() {
    let project = acme_project(SCIM);
    let daemon = Daemon::start(project.dir.path(), &[], &[(ADMIN_ENV, ADMIN)]).await;
    let mut browser = Browser::new(daemon);

    // Without a session every page leads to sign-in, and so does `/`.
    for path in ["/", "/console", "/console/runs", "/console/teamspaces/acme"] {
        let (status, location, _) = browser.get(path).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert!(location.ends_with("/console") || location == "/console/sign-in", "{path} → {location}");
    }
    let add =
        |csrf: &str| vec![("csrf", csrf.to_owned()), ("email", "ada@contoso.com".to_owned()), ("oid", ADA.to_owned())];
    let (status, location, _) =
        browser.post("/console/teamspaces/acme/members", &[("email", "a@b.c"), ("oid", ADA)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/sign-in"), "no session, no change");

    // A sign-in form must come from this browser: no sign-in cookie, no session.
    let (status, _, _) = client()
        .post(browser.daemon.url("/console/sign-in"))
        .form(&[("csrf", "00"), ("token", ADMIN)])
        .send()
        .await
        .map(|r| (r.status(), (), ()))
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);

    let csrf = browser.sign_in().await;
    let session = browser.cookies.iter().find(|(k, _)| k == SESSION_COOKIE).unwrap().1.clone();
    let set = browser.seen.iter().find(|s| s.starts_with(SESSION_COOKIE)).unwrap().clone();
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=", "Path=/console"] {
        assert!(set.contains(attribute), "session cookie lacks {attribute}: {set}");
    }
    assert!(!set.contains("Secure"), "no Secure flag over plain http without a https public_url");

    // A POST without the CSRF token, or with another session's, is refused and changes nothing.
    let (status, _, page) =
        browser.post("/console/teamspaces/acme/members", &[("email", "ada@contoso.com"), ("oid", ADA)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let other = SessionKeys::new(&SecretHash::of(ADMIN)).issue(Millis::now()).unwrap().0;
    let form = add(other.csrf());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = browser.post("/console/teamspaces/acme/members", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a CSRF token is bound to its session");
    assert!(member_emails_of(&project).is_empty(), "refused forms changed nothing");

    // With it, the user is added through the manual source.
    let form = add(&csrf);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = browser.post("/console/teamspaces/acme/members", &form).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("ada@contoso.com") && page.contains("added"), "{page}");
    assert_eq!(member_emails_of(&project), ["ada@contoso.com"]);

    // Forged, expired and old-token sessions are refused like none.
    let keys = SessionKeys::new(&SecretHash::of(ADMIN));
    let expired = keys.issue(Millis(Millis::now().0 - SESSION_LIFETIME_MS - 1000)).unwrap().1;
    let old_token = SessionKeys::new(&SecretHash::of("the previous admin token")).issue(Millis::now()).unwrap().1;
    let (expiry, rest) = session.split_once('.').unwrap();
    let stretched = format!("{}.{rest}", expiry.parse::<i64>().unwrap() + 1);
    for (what, cookie) in [("expired", expired), ("signed with another token", old_token), ("forged", stretched)] {
        let response = client()
            .get(browser.daemon.url("/console/runs"))
            .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "a session {what} is refused");
        assert_eq!(response.headers()["location"], "/console/sign-in");
    }

    // Pages the journey does not reach render too.
    for path in
        ["/console/runs", "/console/audit?oid=&source=manual", "/console/delivery", "/console/teamspaces/acme/scim"]
    {
        let (status, _, page) = browser.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
    }
    let (status, _, page) = browser.get("/console/audit?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a bad time is named: {page}");
    assert!(page.contains("From"));
    let (status, _, _) = browser.get("/console/teamspaces/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, page) = browser.post("/console/delivery/999/retry", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only a dead event can be retried: {page}");
    let (status, _, page) = browser.post("/console/runs/999/approve", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");

    // Sign-out ends the session in the browser.
    let (status, location, _) = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/sign-in"));
    let (status, _, _) = browser.get("/console/runs").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    assert!(browser.seen.iter().all(|text| !text.contains(ADMIN)), "the admin token is never in a page or URL");
    let logs = serde_json::to_string(&browser.daemon.logs()).unwrap();
    assert!(!logs.contains(ADMIN), "nor in the log");
}

fn member_emails_of(project: &Project) -> Vec<String> {
    let listed = project.run(&["members", "list", "--teamspace", "acme", "--format", "json"]).expect(0).json();
    listed.as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_admin_token_the_console_says_how_to_turn_it_on() {
    let project = acme_project("");
    let daemon = Daemon::start(project.dir.path(), &[], &[]).await;
    let response = client().get(daemon.url("/console/sign-in")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = response.text().await.unwrap();
    assert!(page.contains("C7SYNC_ADMIN_TOKEN") && page.contains("The console is off"), "{page}");
    let response = client().get(daemon.url("/console")).send().await.unwrap();
    assert_eq!(response.headers()["location"], "/console/sign-in");
}

/// `npm ci` for the browser tests when its packages are missing (the registry is npm's).
fn ensure_playwright(dir: &Path) {
    if dir.join("node_modules/playwright-core/package.json").exists() {
        return;
    }
    let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(dir).status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "`npm ci` in {} failed: the browser test needs node, npm and playwright-core",
        dir.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_signs_in_adds_imports_approves_manages_tokens_and_signs_out_in_chromium() {
    let chromium = std::env::var("C7SYNC_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (`apt-get install chromium`) or set C7SYNC_TEST_CHROMIUM"
    );
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    ensure_playwright(&scripts);
    let project = acme_project(SCIM);
    let daemon = Daemon::start(project.dir.path(), &[], &[(ADMIN_ENV, ADMIN)]).await;
    let base = daemon.url("");
    let base = base.trim_end_matches('/').to_owned();
    let work = project.dir.path().to_path_buf();
    let screenshots = std::env::var("C7SYNC_CONSOLE_SCREENSHOTS").ok();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("node");
        command
            .arg(scripts.join("journey.mjs"))
            .env("BASE_URL", base)
            .env("ADMIN_TOKEN", ADMIN)
            .env("WORK_DIR", work)
            .env("CHROMIUM", chromium);
        if let Some(dir) = screenshots {
            command.env("SCREENSHOTS", dir);
        }
        command.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stdout.contains("journey passed"), "the journey failed:\n{stdout}\n{stderr}");
    let logs = serde_json::to_string(&daemon.logs()).unwrap();
    assert!(!logs.contains(ADMIN), "the admin token is never logged");
}
