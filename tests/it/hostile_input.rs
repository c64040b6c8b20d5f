//! Hostile SCIM input against a running `c7sync serve`: every request gets a clear 4xx with a
//! SCIM error body, the daemon never panics and keeps serving, and its peak memory stays
//! bounded. (Hostile files for `import` are in cli_import.rs; the parsers are also fuzzed,
//! fuzz/README.md.)

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::daemon::Daemon;
use crate::support::*;

/// Peak memory allowed after the whole barrage, which includes twenty 1 MiB bodies at once.
const PEAK_RSS_MIB: u64 = 200;

struct Case {
    what: &'static str,
    method: reqwest::Method,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    status: StatusCode,
    says: &'static str,
}

fn get(what: &'static str, path: String, status: StatusCode, says: &'static str) -> Case {
    Case {
        what,
        method: reqwest::Method::GET,
        path,
        content_type: "application/scim+json",
        body: Vec::new(),
        status,
        says,
    }
}

fn post(what: &'static str, content_type: &'static str, body: Vec<u8>, status: StatusCode, says: &'static str) -> Case {
    Case { what, method: reqwest::Method::POST, path: "/Users".into(), content_type, body, status, says }
}

fn filter(text: &str) -> String {
    format!("/Users?filter={}", url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_scim_requests_get_clear_4xx_and_memory_stays_bounded() {
    let project = acme_project("\n  [[teamspaces.sources]]\n  kind = \"scim\"\n");
    let token = project.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    let daemon = Daemon::start(project.dir.path(), &[], &[]).await;
    // A fresh connection per request: the server closes one after refusing an oversized body,
    // and a pooled client could otherwise send the next case into that closed connection.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let created =
        post_scim_user(&client, &daemon.url("/scim/v2/Users"), &token, "ada@contoso.com", uuid::Uuid::from_u128(7))
            .await
            .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let ada: Value = created.json().await.unwrap();
    let ada_path = format!("/Users/{}", ada["id"].as_str().unwrap());

    let eq = |n: usize| format!("userName eq \"user{n}@contoso.com\"");
    let ten_thousand_and_one_ops: Vec<Value> =
        (0..10_001).map(|n| json!({"op": "add", "path": "title", "value": format!("t{n}")})).collect();
    let wide_array = format!("[{}0]", "0,".repeat(500_000 - 1)).into_bytes();
    let cases = vec![
        get("parentheses 40 deep", filter(&format!("{}{}{}", "(".repeat(40), eq(1), ")".repeat(40))), StatusCode::BAD_REQUEST, "deeper than 32"),
        get("`not` 200 deep", filter(&format!("{}{}{}", "not (".repeat(200), eq(1), ")".repeat(200))), StatusCode::BAD_REQUEST, "deeper than 32"),
        get("value paths nested", filter(&format!("{}type eq \"w\"{}", "emails[".repeat(50), "]".repeat(50))), StatusCode::BAD_REQUEST, "invalidFilter"),
        get("999 `or` terms", filter(&vec!["a eq 1"; 999].join(" or ")), StatusCode::BAD_REQUEST, "more than 100 `and`/`or`"),
        get("a 20 KB filter", filter(&format!("userName eq \"{}\"", "x".repeat(20_000))), StatusCode::BAD_REQUEST, "longer than 10000 bytes"),
        get("invalid UTF-8 in the filter", "/Users?filter=userName%20eq%20%22%FF%FE%22".into(), StatusCode::BAD_REQUEST, "not UTF-8"),
        get("a filter that never ends", filter("userName eq \"unterminated"), StatusCode::BAD_REQUEST, "invalidFilter"),
        get("count beyond 64 bits", "/Users?count=99999999999999999999999".into(), StatusCode::BAD_REQUEST, "count"),
        post("the same attribute twice", "application/scim+json",
             br#"{"userName": "eve@contoso.com", "USERNAME": "mallory@contoso.com", "active": true}"#.to_vec(),
             StatusCode::BAD_REQUEST, "appears twice"),
        post("a nesting bomb", "application/scim+json", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
             StatusCode::BAD_REQUEST, "invalidSyntax"),
        post("half a million array elements", "application/scim+json", wide_array.clone(), StatusCode::BAD_REQUEST, "JSON object"),
        post("50,000 unknown attributes", "application/scim+json",
             serde_json::to_vec(&(0..50_000).map(|n| (format!("k{n}"), json!(n))).collect::<serde_json::Map<_, _>>()).unwrap(),
             StatusCode::BAD_REQUEST, "userName"),
        post("2 MiB", "application/scim+json", vec![b' '; 2 << 20], StatusCode::PAYLOAD_TOO_LARGE, "larger than"),
        post("a forged log line in userName", "application/scim+json",
             json!({"userName": "eve@contoso.com\n2026-12-01T00:00:00Z  INFO all is well", "active": true}).to_string().into_bytes(),
             StatusCode::BAD_REQUEST, "contains a control character"),
        post("terminal escapes in displayName", "application/scim+json",
             json!({"userName": "eve@contoso.com", "displayName": "Eve\u{1b}[2J", "active": true}).to_string().into_bytes(),
             StatusCode::BAD_REQUEST, "control character"),
        post("a NUL in name.formatted", "application/scim+json",
             json!({"userName": "eve@contoso.com", "name": {"formatted": "Eve\u{0}"}, "active": true}).to_string().into_bytes(),
             StatusCode::BAD_REQUEST, "control character"),
        post("invalid UTF-8", "application/scim+json", vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'], StatusCode::BAD_REQUEST, "not valid JSON"),
        post("XML", "application/xml", b"<user/>".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/scim+json"),
        post("form data", "multipart/form-data; boundary=x", b"--x--".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/scim+json"),
        post("a Latin-1 body", "application/scim+json; charset=iso-8859-1",
             b"{\"userName\": \"j\xf6rg@contoso.com\", \"active\": true}".to_vec(),
             StatusCode::UNSUPPORTED_MEDIA_TYPE, "charset `iso-8859-1`: send the body in UTF-8"),
        Case {
            what: "10,001 PATCH operations",
            method: reqwest::Method::PATCH,
            path: ada_path.clone(),
            content_type: "application/scim+json",
            body: serde_json::to_vec(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ten_thousand_and_one_ops})).unwrap(),
            status: StatusCode::BAD_REQUEST,
            says: "more than 10000 operations",
        },
        Case {
            what: "a PATCH path that is a filter bomb",
            method: reqwest::Method::PATCH,
            path: ada_path.clone(),
            content_type: "application/scim+json",
            body: serde_json::to_vec(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "remove", "path": format!("emails[{}value eq \"x\"{}]", "(".repeat(64), ")".repeat(64))}]})).unwrap(),
            status: StatusCode::BAD_REQUEST,
            says: "deeper than 32",
        },
    ];
    for case in cases {
        let response = client
            .request(case.method.clone(), daemon.url(&format!("/scim/v2{}", case.path)))
            .bearer_auth(&token)
            .header("content-type", case.content_type)
            .body(case.body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            // The server answers 413 and closes while the client may still be sending the
            // rest of the body: the client then sees the connection reset instead.
            Err(error) if case.status == StatusCode::PAYLOAD_TOO_LARGE => {
                eprintln!("{}: the connection was closed mid-body ({error})", case.what);
                continue;
            }
            Err(error) => panic!("{}: {error}", case.what),
        };
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, case.status, "{}: {text}", case.what);
        let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: not JSON: {text}", case.what));
        assert_eq!(error["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{}", case.what);
        assert!(text.contains(case.says), "{}: expected `{}` in {text}", case.what, case.says);
        assert!(text.len() < 2000, "{}: the error echoes the input ({} bytes)", case.what, text.len());
    }

    // Twenty 1 MiB bodies at once.
    let mut floods = Vec::new();
    for _ in 0..20 {
        let request = client
            .post(daemon.url("/scim/v2/Users"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(wide_array.clone())
            .send();
        floods.push(tokio::spawn(request));
    }
    for flood in floods {
        assert_eq!(flood.await.unwrap().unwrap().status(), StatusCode::BAD_REQUEST);
    }

    // Still serving, unchanged, and bounded.
    let users: Value =
        client.get(daemon.url("/scim/v2/Users")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(users["totalResults"], 1, "{users}");
    let peak = daemon.peak_rss_kib() / 1024;
    assert!(peak < PEAK_RSS_MIB, "peak memory {peak} MiB");
    let panics: Vec<_> = daemon.logs().into_iter().filter(|l| l.to_string().contains("panicked")).collect();
    assert!(panics.is_empty(), "{panics:?}");
    eprintln!("hostile SCIM input: peak memory of c7sync serve {peak} MiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_from_one_teamspace_do_not_stall_another() {
    use tokio::io::AsyncWriteExt;
    let scim = "\n  [[teamspaces.sources]]\n  kind = \"scim\"\n";
    let config = format!(
        "database = \"sqlite://c7sync.db\"\n[[teamspaces]]\nname = \"acme\"\ntenant_id = \"{TENANT}\"\naudience = \"{AUDIENCE}\"\n{scim}\n[[teamspaces]]\nname = \"globex\"\ntenant_id = \"{TENANT}\"\naudience = \"{AUDIENCE}\"\n{scim}"
    );
    let project = Project::new(&config);
    let acme = project.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    let globex = project.run(&["scim-token", "create", "--teamspace", "globex"]).expect(0).stdout.trim().to_owned();
    let daemon = Daemon::start(project.dir.path(), &[], &[]).await;
    // More slow writers than there are parsing permits (4), each with a body that never ends.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut socket = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
        let head = format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {acme}\r\nContent-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        stalled.push(socket);
    }
    let client = reqwest::Client::new();
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        post_scim_user(&client, &daemon.url("/scim/v2/Users"), &globex, "bob@globex.com", uuid::Uuid::from_u128(7)),
    )
    .await;
    let response = answered.expect("globex's POST waited behind acme's stalled bodies").unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread")]
async fn scim_methods_cannot_mint_metric_labels() {
    let project = acme_project("\n  [[teamspaces.sources]]\n  kind = \"scim\"\n");
    let daemon = Daemon::start(project.dir.path(), &[], &[]).await;
    let client = reqwest::Client::new();
    for n in 0..50 {
        let method = reqwest::Method::from_bytes(format!("BREW{n}{}", "X".repeat(2_000)).as_bytes()).unwrap();
        let response = client.request(method, daemon.url("/scim/v2/Users")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let metrics = client.get(daemon.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("BREW"), "a client-chosen method became a label");
    assert!(metrics.contains("c7sync_scim_requests_total{method=\"other\",status=\"401\"} 50"), "{metrics}");
    assert!(metrics.len() < 20_000, "/metrics is {} bytes", metrics.len());
}
