//! Everything at once against one database: `c7sync serve` taking SCIM writes (POSTs, and
//! PATCHes deactivating every third user) from several clients while its scheduled Graph sync runs every second, and a CLI `import` from another
//! process. No request fails with a busy database, nothing is lost: the final members are
//! exactly the union of what each side provisioned.

use std::collections::BTreeSet;
use std::time::Duration;

use c7sync::store::{Store, StoreSettings};

use crate::support::daemon::{message, Daemon};
use crate::support::fake_graph::{FakeGraph, Member, User};
use crate::support::*;

const CLIENT_ID: &str = GRAPH_CLIENT_ID;
const GROUP: uuid::Uuid = GRAPH_GROUP;

#[tokio::test(flavor = "multi_thread")]
async fn scim_writes_a_scheduled_graph_sync_and_a_cli_import_all_land() {
    let fake = FakeGraph::start(TENANT, CLIENT_ID, "s3cret", 100).await;
    fake.set_group(GROUP, (0..500).map(|n| Member::User(User::numbered(n))).collect());
    let sources = format!(
        "{}\n  [[teamspaces.sources]]\n  kind = \"scim\"\n",
        graph_source(&fake, "dev", "C7SYNC_TEST_GRAPH_SECRET", r#"schedule = "* * * * * *""#)
    );
    let project = acme_project(&sources);
    let token = project.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    let mut csv = String::from("email,oid\n");
    for n in 0..3000u128 {
        csv.push_str(&format!(
            "import{n}@contoso.com,{}\n",
            uuid::Uuid::from_u128(0x5e25_04e0_4f89_41d3_9a0c_0000_0000_0000 + n)
        ));
    }
    project.write("import.csv", &csv);

    let daemon = Daemon::start(project.dir.path(), &[], &[("C7SYNC_TEST_GRAPH_SECRET", "s3cret")]).await;
    let url = daemon.url("/scim/v2/Users");
    let client = reqwest::Client::new();
    let mut writers = Vec::new();
    for writer in 0..4u128 {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            let mut emails = Vec::new();
            for n in writer * 1000..writer * 1000 + 150 {
                let email = format!("scim{n}@contoso.com");
                let oid = uuid::Uuid::from_u128(0x4d25_04e0_4f89_41d3_9a0c_0000_0000_0000 + n);
                let response = post_scim_user(&client, &url, &token, &email, oid).await.unwrap();
                assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
                let created: serde_json::Value = response.json().await.unwrap();
                // Every third user is then deactivated with a PATCH, as Entra does when a
                // user leaves the provisioning scope: no longer a member.
                if n % 3 == 0 {
                    let patch = serde_json::json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
                    });
                    let response = client
                        .patch(format!("{url}/{}", created["id"].as_str().unwrap()))
                        .bearer_auth(&token)
                        .header("content-type", "application/scim+json")
                        .body(patch.to_string())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
                } else {
                    emails.push(email);
                }
            }
            emails
        }));
    }
    // Meanwhile another process imports 3,000 members.
    let import = tokio::task::spawn_blocking({
        let dir = project.dir.path().to_owned();
        move || run_binary(&dir, &["import", "import.csv", "--teamspace", "acme", "--source", "bulk"], None)
    });
    let mut expected = BTreeSet::new();
    for writer in writers {
        expected.extend(writer.await.unwrap());
    }
    let import = import.await.unwrap();
    import.expect(0);
    expected.extend((0..3000).map(|n| format!("import{n}@contoso.com")));
    expected.extend((0..500).map(|n| format!("user{n}@contoso.com")));
    // Wait for one more scheduled Graph run to finish after everything else.
    let graph_runs = |logs: &[serde_json::Value]| {
        logs.iter().filter(|l| message(l) == "run finished" && l.to_string().contains("graph:")).count()
    };
    let before = graph_runs(&daemon.logs());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while graph_runs(&daemon.logs()) <= before {
        assert!(std::time::Instant::now() < deadline, "no Graph run finished after the writers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, logs) = daemon.terminate(Duration::from_secs(30)).await;
    assert!(status.success());
    let busy: Vec<_> = logs.iter().filter(|l| l.to_string().contains("busy")).collect();
    assert!(busy.is_empty(), "{busy:?}");

    let store = Store::open(&StoreSettings::new(project.database_url().to_owned())).await.unwrap();
    let emails: BTreeSet<String> = sqlx::query_scalar("SELECT email FROM members")
        .fetch_all(&inspect(&store).await)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(emails.len(), expected.len(), "missing: {:?}", expected.difference(&emails).take(5).collect::<Vec<_>>());
    assert_eq!(emails, expected);
    assert!(store.check_integrity().await.unwrap().is_empty());
    let graph_runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs r JOIN sources s ON s.id = r.source_id WHERE s.kind = 'graph' AND r.outcome = 'applied'",
    )
    .fetch_one(&inspect(&store).await)
    .await
    .unwrap();
    assert!(graph_runs >= 2, "the scheduled sync ran alongside ({graph_runs})");
}
