//! Two and more users instances on one nats-server, each with its own data directory:
//! `USERS` is the truth, each `users.db` that instance's view; and the upgrade of an
//! earlier database.

use crate::helpers::*;

#[tokio::test]
async fn one_name_sent_to_two_instances_at_once_is_created_once() {
    let server = NatsServer::start();
    let (a, b) = (
        Instance::start(&server).await,
        Instance::start(&server).await,
    );
    for round in 0..5 {
        let name = format!("race{round}");
        let mut calls = Vec::new();
        for i in 0..8 {
            let url = if i % 2 == 0 { &a } else { &b }.running.url("/users");
            let body = creds(&name, &format!("password-{i}"));
            calls.push(tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .expect("sent")
                    .status()
            }));
        }
        let mut statuses = Vec::new();
        for call in calls {
            statuses.push(call.await.expect("task"));
        }
        let created = statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        let taken = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count();
        assert_eq!((created, taken), (1, 7), "{name}: {statuses:?}");
    }
}

#[tokio::test]
async fn an_account_made_on_one_instance_is_known_to_the_other_at_once() {
    let server = NatsServer::start();
    let (a, b) = (
        Instance::start(&server).await,
        Instance::start(&server).await,
    );
    for i in 0..20 {
        let (maker, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let name = format!("across{i}");
        assert_eq!(
            maker.post("/users", creds(&name, "long enough")).await.0,
            StatusCode::CREATED
        );
        let (status, body) = other.get(&format!("/users/{name}")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{name} on the other instance: {body}"
        );
        assert_eq!(other.verify(&name, "long enough").await, json!(true));
        assert_eq!(other.verify(&name, "not the one").await, json!(false));
    }
    // Over the bus, whichever instance answers.
    let nats = async_nats::connect(server.url()).await.expect("connects");
    let made = users::create(
        &nats,
        &CreateRequest {
            username: "busy-bee".into(),
            password: "long enough".into(),
        },
    )
    .await
    .expect("created");
    for _ in 0..10 {
        let valid = users::verify(
            &nats,
            &VerifyRequest {
                username: made.username.clone(),
                password: "long enough".into(),
            },
        )
        .await
        .expect("answered");
        assert!(valid.valid);
    }
}

#[tokio::test]
async fn an_instance_with_an_empty_data_directory_rebuilds_every_account_with_the_same_ids() {
    let server = NatsServer::start();
    let a = Instance::start(&server).await;
    for i in 0..30 {
        let name = format!("early{i}");
        assert_eq!(
            a.post("/users", creds(&name, "long enough")).await.0,
            StatusCode::CREATED
        );
    }
    let late = Instance::start(&server).await;
    let (theirs, ours) = (
        rows(&a.dir.path().join("users.db")),
        rows(&late.dir.path().join("users.db")),
    );
    assert_eq!(theirs.len(), 33, "30 accounts and the demo ones");
    assert_eq!(theirs, ours, "the same accounts, ids and hashes");
    assert_eq!(late.verify("early29", "long enough").await, json!(true));
    assert_eq!(late.verify("victor", "1234").await, json!(true));

    // A view removed under a stopped instance is rebuilt at its next start.
    let Instance { mut running, dir } = late;
    running.stop().await;
    std::fs::remove_file(dir.path().join("users.db")).expect("remove the view");
    let again = Instance::start_in(&server, dir).await;
    assert_eq!(rows(&again.dir.path().join("users.db")), theirs);
}

async fn without_demo_accounts(server: &NatsServer) -> Instance {
    let dir = tempfile::tempdir().expect("temp dir");
    Instance::start_with(server, dir, |c| c.no_demo_accounts = true).await
}

#[tokio::test]
async fn a_start_cut_short_after_the_first_demo_account_makes_the_others_next_time() {
    let server = NatsServer::start();
    let first = without_demo_accounts(&server).await;
    // The stream holds victor alone, as after a start that stopped after him.
    assert_eq!(
        first.post("/users", creds("victor", "his own now")).await.0,
        StatusCode::CREATED
    );
    let next = Instance::start(&server).await;
    assert_eq!(next.verify("kilian", "abcd").await, json!(true));
    assert_eq!(next.verify("baptiste", "pass").await, json!(true));
    assert_eq!(next.verify("victor", "his own now").await, json!(true));
    assert_eq!(next.verify("victor", "1234").await, json!(false));
}

#[tokio::test]
async fn a_shop_in_use_without_the_demo_accounts_is_left_without_them() {
    let server = NatsServer::start();
    let first = without_demo_accounts(&server).await;
    assert_eq!(
        first.post("/users", creds("alice", "wonderland")).await.0,
        StatusCode::CREATED
    );
    let next = Instance::start(&server).await;
    assert_eq!(next.get("/users/victor").await.0, StatusCode::NOT_FOUND);
    assert_eq!(next.get("/users/alice").await.0, StatusCode::OK);
}

#[tokio::test]
async fn wrong_passwords_are_counted_across_instances() {
    let server = NatsServer::start();
    let (a, b) = (
        Instance::start(&server).await,
        Instance::start(&server).await,
    );
    // Five wrong passwords, alternating between the instances: the limit is five in all.
    for i in 0..5 {
        let on = if i % 2 == 0 { &a } else { &b };
        assert_eq!(on.verify("victor", "wrong").await, json!(false));
    }
    // Each instance has counted the other's failures (a bus hop away): three made on a,
    // two on b.
    testkit::throttle_shared(&b.running.url("/metrics"), "password_check", 3).await;
    testkit::throttle_shared(&a.running.url("/metrics"), "password_check", 2).await;
    for on in [&a, &b] {
        let (status, body) = on.post("/users/verify", creds("victor", "1234")).await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "the sixth attempt is refused on each instance, even with the right password: {body}"
        );
    }
}

#[tokio::test]
async fn the_previous_versions_database_is_imported_with_its_ids() {
    let server = NatsServer::start();
    let hasher = ::users::hasher::Hasher::new(1).await.expect("hasher");
    let hash = hasher.hash("kept password".into()).await.expect("hash");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("users.db");
    legacy_db(&db, &[(4, "olivia", &hash), (9, "victor", &hash)]);
    let a = Instance::start_in(&server, dir).await;
    assert_eq!(a.verify("olivia", "kept password").await, json!(true));
    assert_eq!(
        a.get("/users/olivia").await.1,
        json!({ "id": 4, "username": "olivia" })
    );
    assert_eq!(a.get("/users/victor").await.1["id"], json!(9));
    assert_eq!(
        a.verify("victor", "1234").await,
        json!(false),
        "no demo account over an import"
    );
    assert!(
        a.dir.path().join("users.db.imported").exists(),
        "the old file is kept aside"
    );
    // Another instance knows the imported accounts, numbered the same.
    let b = Instance::start(&server).await;
    assert_eq!(b.get("/users/olivia").await.1["id"], json!(4));
    let made = b.post("/users", creds("newcomer", "long enough")).await;
    assert_eq!(made.0, StatusCode::CREATED);
    assert_eq!(
        b.get("/users/newcomer").await.1["id"],
        json!(10),
        "the next id"
    );
    assert_eq!(a.get("/users/newcomer").await.1["id"], json!(10));
}

#[tokio::test]
async fn the_flask_originals_people_log_in_with_their_old_passwords_once_hashed_anew() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    legacy_db(
        &dir.path().join("users.db"),
        &[
            (1, "kilian", ::users::werkzeug::SCRYPT_ABCD),
            (2, "zoe", ::users::werkzeug::PBKDF2_CREME),
        ],
    );
    let a = Instance::start_in(&server, dir).await;
    let b = Instance::start(&server).await;
    assert_eq!(b.verify("kilian", "abce").await, json!(false));
    assert_eq!(a.verify("kilian", "abcd").await, json!(true));
    assert_eq!(b.verify("zoe", "crème brûlée").await, json!(true));
    // The first login replaced the werkzeug hashes with argon2id, in every view (a miss
    // brings a view up to the stream's end).
    for instance in [&a, &b] {
        assert_eq!(
            instance.get("/users/nobody-here").await.0,
            StatusCode::NOT_FOUND
        );
        let hashes: Vec<_> = rows(&instance.dir.path().join("users.db"))
            .into_iter()
            .map(|(_, name, hash)| (name, hash.starts_with("$argon2id$")))
            .collect();
        assert_eq!(
            hashes,
            vec![("kilian".to_owned(), true), ("zoe".to_owned(), true)]
        );
    }
    assert_eq!(a.verify("kilian", "abcd").await, json!(true));
    assert_eq!(a.verify("zoe", "crème brûlée").await, json!(true));
    assert_eq!(a.verify("zoe", "creme brulee").await, json!(false));
}

#[tokio::test]
async fn a_read_finds_every_account_the_stream_held_when_it_arrived() {
    // Another instance's new account, as its 201 would leave it: stored in the stream,
    // with no time for this instance's view to follow.
    let server = NatsServer::start();
    let a = Instance::start(&server).await;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let hash = ::users::hasher::Hasher::new(1)
        .await
        .expect("hasher")
        .hash("long enough".into())
        .await
        .expect("hash");
    // Rounds of 100 records stored at once, then a read of the last one at once.
    for round in 0..5 {
        let mut acks = Vec::new();
        for i in 0..100 {
            let name = format!("elsewhere{round}-{i}");
            let record = ::users::record::AccountRecord::new(name.clone(), hash.clone(), None);
            let payload = serde_json::to_vec(&record).expect("json");
            acks.push(
                js.publish(users::subject::account(&name), payload.into())
                    .await
                    .expect("sent"),
            );
        }
        for ack in acks {
            ack.await.expect("stored");
        }
        let (status, body) = a.get(&format!("/users/elsewhere{round}-99")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "round {round}: found by the next read: {body}"
        );
    }
    assert_eq!(a.verify("elsewhere4-99", "long enough").await, json!(true));
}

#[tokio::test]
async fn a_view_that_cannot_catch_up_answers_503_never_a_false_404() {
    let server = NatsServer::start();
    let a = Instance::start(&server).await;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    // Another process holds users.db's write lock: the view cannot apply anything.
    let lock = rusqlite::Connection::open(a.dir.path().join("users.db")).expect("open");
    lock.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    let record = ::users::record::AccountRecord::new("held-back".into(), "x".into(), None);
    let stored = ::users::accounts::publish(&js, &record, 0)
        .await
        .expect("stored");
    assert!(matches!(stored, ::users::accounts::Stored::At(_)));
    let (status, body) = a.get("/users/held-back").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reason"], "view_behind");
    lock.execute_batch("ROLLBACK").expect("unlock");
    drop(lock);
    let (status, body) = a.get("/users/held-back").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "found once the view caught up: {body}"
    );
}
