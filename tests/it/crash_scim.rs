//! `c7sync serve` killed with SIGKILL in the middle of a burst of SCIM writes, again and again:
//! after every kill the database is consistent, and every user whose POST was answered 201 is
//! there (an answer means committed).

use std::time::Duration;

use c7sync::store::{Store, StoreSettings};

use crate::support::daemon::Daemon;
use crate::support::*;

const KILLS: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn killing_serve_during_scim_writes_loses_no_acknowledged_write_and_leaves_no_half() {
    // acme gets a scim source next to its csv one.
    let config = standard_config("50%").replacen(
        "  mode = \"replace\"\n",
        "  mode = \"replace\"\n\n  [[teamspaces.sources]]\n  kind = \"scim\"\n",
        1,
    );
    let project = Project::new(&config);
    let token = project.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    let client = reqwest::Client::new();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut sequence = Sequence(42);
    let mut next_user = 0u128;

    for kill in 0..KILLS {
        let daemon = Daemon::start(project.dir.path(), &[], &[]).await;
        let url = daemon.url("/scim/v2/Users");
        // Eight writers POST as fast as they can until the process dies under them.
        let mut writers = Vec::new();
        for writer in 0..8u128 {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            let first = next_user + writer * 10_000;
            writers.push(tokio::spawn(async move {
                let mut created = Vec::new();
                for n in first..first + 10_000 {
                    let user_name = format!("crash{n}@contoso.com");
                    let oid = uuid::Uuid::from_u128(0x7f25_04e0_4f89_41d3_9a0c_0000_0000_0000 + n);
                    match post_scim_user(&client, &url, &token, &user_name, oid).await {
                        Ok(r) if r.status() == 201 => created.push(user_name),
                        Ok(r) => panic!("unexpected {}", r.status()),
                        Err(_) => break, // the server died
                    }
                }
                created
            }));
        }
        next_user += 8 * 10_000;
        tokio::time::sleep(Duration::from_millis(100 + sequence.next_below(400))).await;
        drop(daemon); // SIGKILL
        for writer in writers {
            acknowledged.extend(writer.await.unwrap());
        }

        let url = project.database_url().to_owned();
        let store = Store::open(&StoreSettings::new(&url)).await.unwrap();
        let problems = store.check_integrity().await.unwrap();
        assert!(problems.is_empty(), "after kill {kill}: {problems:?}");
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT user_name FROM scim_users").fetch_all(&inspect(&store).await).await.unwrap();
        let stored: std::collections::HashSet<String> = stored.into_iter().collect();
        let lost: Vec<&String> = acknowledged.iter().filter(|u| !stored.contains(*u)).collect();
        assert!(lost.is_empty(), "after kill {kill}: acknowledged but lost: {lost:?}");
        let members: i64 =
            sqlx::query_scalar("SELECT count(*) FROM members").fetch_one(&inspect(&store).await).await.unwrap();
        assert_eq!(members as usize, stored.len(), "every stored active user is a member, no more");
        store.close().await;
    }
    assert!(acknowledged.len() > KILLS, "the writers got through between kills ({})", acknowledged.len());
}
