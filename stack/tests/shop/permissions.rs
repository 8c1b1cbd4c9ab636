//! The bus's permissions, against a real nats-server started with the project's
//! `nats.conf`: each user may do what its role needs and nothing else.

use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use testkit::{NatsServer, Options};
use tokio::sync::mpsc;

const USERS: [&str; 5] = ["gateway", "auth", "users", "orders", "ops"];

fn password(user: &str) -> String {
    format!("test-password-of-{user}")
}

fn server() -> NatsServer {
    NatsServer::start_with(Options {
        config: Some(testkit::project_dir().join("nats.conf")),
        env: USERS
            .iter()
            .map(|u| (stack::secrets::variable(u), password(u)))
            .collect(),
        ..Options::default()
    })
}

/// A client connected as `user` (a service reads its replies on `_INBOX_<user>`, as
/// the services do; people on `_INBOX`), and the server's errors it receives.
async fn connect(server: &NatsServer, user: &str) -> (Client, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let inbox = if user == "ops" {
        "_INBOX".to_owned()
    } else {
        format!("_INBOX_{user}")
    };
    let client = ConnectOptions::with_user_and_password(user.into(), password(user))
        .custom_inbox_prefix(inbox)
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event.to_string());
            }
        })
        .connect(server.url())
        .await
        .unwrap_or_else(|err| panic!("{user} connects: {err}"));
    (client, rx)
}

/// Waits for the server to report a permissions violation about `subject`.
async fn violation(errors: &mut mpsc::UnboundedReceiver<String>, subject: &str) {
    let deadline = tokio::time::sleep(testkit::PATIENCE);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => panic!("no permissions violation reported for {subject}"),
            Some(error) = errors.recv() => {
                if error.contains("Permissions Violation") && error.contains(subject) {
                    return;
                }
            }
        }
    }
}

#[tokio::test]
async fn anonymous_and_wrong_passwords_are_refused() {
    let server = server();
    assert!(async_nats::connect(server.url()).await.is_err());
    let wrong = ConnectOptions::with_user_and_password("ops".into(), "guess".into())
        .connect(server.url())
        .await;
    assert!(wrong.is_err());
}

#[tokio::test]
async fn the_gateway_may_not_publish_events_nor_listen_to_users_verify() {
    let server = server();
    let (gateway, mut errors) = connect(&server, "gateway").await;
    let (ops, _) = connect(&server, "ops").await;
    let mut watch = ops
        .subscribe("orders.events.>")
        .await
        .expect("ops subscribes");
    ops.flush().await.expect("flush");

    gateway
        .publish("orders.events.purchased.x", "{}".into())
        .await
        .expect("sent");
    gateway.flush().await.expect("flush");
    violation(&mut errors, "orders.events.purchased.x").await;

    let _sub = gateway.subscribe("users.verify").await.expect("sent");
    violation(&mut errors, "users.verify").await;

    // Nothing reached a subscriber of the events.
    let (orders, _) = connect(&server, "orders").await;
    orders
        .publish("orders.events.purchased.marker", "marker".into())
        .await
        .expect("sent");
    orders.flush().await.expect("flush");
    let first = tokio::time::timeout(testkit::PATIENCE, futures_util::StreamExt::next(&mut watch))
        .await
        .expect("a message")
        .expect("open");
    assert_eq!(
        first.subject.as_str(),
        "orders.events.purchased.marker",
        "the gateway's publish was dropped"
    );
}

#[tokio::test]
async fn ops_may_look_but_not_create_users() {
    let server = server();
    let (ops, mut errors) = connect(&server, "ops").await;
    let request = async_nats::Request::new()
        .payload(r#"{"username":"mallory","password":"password1"}"#.into())
        .timeout(Some(Duration::from_secs(1)));
    assert!(ops.send_request("users.create", request).await.is_err());
    violation(&mut errors, "users.create").await;
    // Looking is allowed: $SRV and read-only requests go out without a violation.
    let get = async_nats::Request::new()
        .payload(r#"{"username":"victor"}"#.into())
        .timeout(Some(Duration::from_millis(300)));
    let _ = ops.send_request("users.get", get).await;
    // A token one holds may be checked (`nats req auth.verify`).
    let verify = async_nats::Request::new()
        .payload(r#"{"token":"x"}"#.into())
        .timeout(Some(Duration::from_millis(300)));
    let _ = ops.send_request("auth.verify", verify).await;
    let ping = async_nats::Request::new().timeout(Some(Duration::from_millis(300)));
    let _ = ops.send_request("$SRV.PING", ping).await;
    let _events = ops.subscribe("orders.events.>").await.expect("subscribe");
    let _signups = ops.subscribe("users.events.>").await.expect("subscribe");
    let _replies = ops.subscribe("_INBOX.ops-1").await.expect("subscribe");
    ops.flush().await.expect("flush");
    // A round trip, so that a violation of the above would have arrived by now.
    let ping = async_nats::Request::new().timeout(Some(Duration::from_millis(300)));
    let _ = ops.send_request("$SRV.PING", ping).await;
    assert!(errors.try_recv().is_err(), "no other violation");
}

#[tokio::test]
async fn ops_reads_no_password_nor_token_and_joins_no_queue_group() {
    let server = server();
    let (ops, mut errors) = connect(&server, "ops").await;
    // Request subjects carry passwords and tokens; other inboxes carry tokens.
    for subject in [
        ">",
        "users.verify",
        "users.create",
        "auth.login",
        "auth.verify",
        "_INBOX_gateway.>",
        "_INBOX_auth.>",
        "$SRV.PING",
    ] {
        let _sub = ops.subscribe(subject).await.expect("sent");
        violation(&mut errors, subject).await;
    }
    // Nor take requests away from a service by joining its queue group.
    for subject in ["auth.verify", "orders.buy"] {
        let _sub = ops
            .queue_subscribe(subject, "q".to_owned())
            .await
            .expect("sent");
        violation(&mut errors, subject).await;
    }
}

#[tokio::test]
async fn services_keep_to_their_own_subjects() {
    let server = server();
    let (users, mut users_errors) = connect(&server, "users").await;
    users
        .publish("orders.events.purchased.x", "{}".into())
        .await
        .expect("sent");
    users.flush().await.expect("flush");
    violation(&mut users_errors, "orders.events.purchased.x").await;

    let (auth, mut auth_errors) = connect(&server, "auth").await;
    let _sub = auth.subscribe("users.verify").await.expect("sent");
    violation(&mut auth_errors, "users.verify").await;

    let (orders, mut orders_errors) = connect(&server, "orders").await;
    // Nobody reads another's replies (a login's token goes to the gateway's inbox).
    let _snoop = orders.subscribe("_INBOX_gateway.>").await.expect("sent");
    violation(&mut orders_errors, "_INBOX_gateway.>").await;
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(orders.clone());
    assert!(
        js.delete_stream("ORDERS").await.is_err(),
        "orders may not delete streams"
    );
    violation(&mut orders_errors, "$JS.API.STREAM.DELETE.ORDERS").await;
}

#[tokio::test]
async fn ops_reads_the_stream_but_cannot_aim_its_deliveries() {
    let server = server();
    let (orders, _) = connect(&server, "orders").await;
    let js = async_nats::jetstream::new(orders.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.events.>".into()],
        ..Default::default()
    })
    .await
    .expect("orders makes its stream");
    js.publish("orders.events.purchased.victor", "{}".into())
        .await
        .expect("published")
        .await
        .expect("stored");

    let (ops, mut errors) = connect(&server, "ops").await;
    let ops_js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(ops.clone());
    let stream = ops_js
        .get_stream("ORDERS")
        .await
        .expect("ops reads the stream's info");
    let first = stream.get_raw_message(1).await.expect("ops reads an event");
    assert_eq!(first.subject.as_str(), "orders.events.purchased.victor");
    // A consumer that would deliver the stored events to orders.buy: refused.
    let aimed = stream
        .create_consumer(async_nats::jetstream::consumer::push::Config {
            deliver_subject: "orders.buy".into(),
            ..Default::default()
        })
        .await;
    assert!(aimed.is_err(), "ops may not create consumers");
    violation(&mut errors, "$JS.API.CONSUMER.CREATE.ORDERS").await;
}

#[tokio::test]
async fn the_accounts_stream_and_the_throttles_belong_to_their_service_alone() {
    let server = server();
    let (users, _) = connect(&server, "users").await;
    let js = async_nats::jetstream::new(users.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "USERS".into(),
        subjects: vec!["users.accounts.>".into()],
        ..Default::default()
    })
    .await
    .expect("users makes its stream");
    js.publish(
        "users.accounts.victor",
        "{\"password_hash\":\"secret\"}".into(),
    )
    .await
    .expect("published")
    .await
    .expect("stored");

    // Hashes: ops reads the stream's size, never a record, live or stored.
    let (ops, mut errors) = connect(&server, "ops").await;
    let ops_js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(ops.clone());
    let stream = ops_js
        .get_stream("USERS")
        .await
        .expect("ops reads the stream's info");
    assert!(
        stream.get_raw_message(1).await.is_err(),
        "ops reads no account"
    );
    violation(&mut errors, "$JS.API.STREAM.MSG.GET.USERS").await;
    for subject in [
        "users.accounts.>",
        "users.throttle.verify",
        "auth.throttle.login",
    ] {
        let _sub = ops.subscribe(subject).await.expect("sent");
        violation(&mut errors, subject).await;
    }

    // Nor may the gateway, or another service, read or forge them.
    let (gateway, mut gateway_errors) = connect(&server, "gateway").await;
    let _sub = gateway.subscribe("users.accounts.>").await.expect("sent");
    violation(&mut gateway_errors, "users.accounts.>").await;
    gateway
        .publish("auth.throttle.login", "{}".into())
        .await
        .expect("sent");
    violation(&mut gateway_errors, "auth.throttle.login").await;
    let (orders, mut orders_errors) = connect(&server, "orders").await;
    orders
        .publish("users.accounts.mallory", "{}".into())
        .await
        .expect("sent");
    violation(&mut orders_errors, "users.accounts.mallory").await;
    let orders_js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(orders.clone());
    assert!(orders_js.get_stream("USERS").await.is_err());
    violation(&mut orders_errors, "$JS.API.STREAM.INFO.USERS").await;
}

/// Asks the end of `stream`, holding one event, as `user` until a question was a
/// direct get, without a permissions violation.
async fn asks_the_end_by_direct_gets(
    user: &str,
    client: &Client,
    errors: &mut mpsc::UnboundedReceiver<String>,
    stream: &str,
) {
    // The first question is a STREAM.INFO; once a direct get was answered, the
    // questions of the next second are direct gets.
    // Both give the same end: its sequence, and the time of its last message.
    let tail = service_kit::stream_tail::StreamTail::new(client.clone(), stream);
    let by_info = tail.end().await.expect("the end");
    assert_eq!(by_info.seq, 1, "{stream}");
    assert!(!by_info.stored_at.is_empty(), "{by_info:?}");
    let deadline = tokio::time::Instant::now() + testkit::PATIENCE;
    while tail.questions().direct == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user} never asked {stream} by a direct get: {:?}",
            tail.questions()
        );
        assert_eq!(tail.end().await.expect("the end"), by_info, "{stream}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(tail.end().await.expect("the end"), by_info, "{stream}");
    while let Ok(event) = errors.try_recv() {
        assert!(!event.contains("Permissions Violation"), "{user}: {event}");
    }
}

#[tokio::test]
async fn each_reader_of_a_stream_end_asks_it_by_direct_gets() {
    let server = server();
    for (user, subject) in [
        ("users", "users.accounts.victor"),
        ("orders", "orders.events.purchased.victor"),
    ] {
        let (client, mut errors) = connect(&server, user).await;
        let js = async_nats::jetstream::new(client.clone());
        let stream = if user == "users" {
            users::accounts::ensure(&js)
                .await
                .expect("users makes its stream");
            "USERS"
        } else {
            orders::events::stream::ensure(&js)
                .await
                .expect("orders makes its stream");
            "ORDERS"
        };
        js.publish(subject, "{}".into())
            .await
            .expect("published")
            .await
            .expect("stored");
        asks_the_end_by_direct_gets(user, &client, &mut errors, stream).await;
    }
    // The gateway asks the end of ORDERS before each history read.
    let (gateway, mut errors) = connect(&server, "gateway").await;
    asks_the_end_by_direct_gets("gateway", &gateway, &mut errors, "ORDERS").await;
    // The accounts stream holds hashes: no other identity reads its last record.
    for user in ["orders", "gateway", "auth", "ops"] {
        let (client, mut errors) = connect(&server, user).await;
        let asked = tokio::time::timeout(
            Duration::from_millis(500),
            client.request("$JS.API.DIRECT.GET.USERS", r#"{"last_by_subj":">"}"#.into()),
        )
        .await;
        assert!(
            !matches!(asked, Ok(Ok(ref m)) if m.status.is_none()),
            "{user} read an account"
        );
        violation(&mut errors, "$JS.API.DIRECT.GET.USERS").await;
    }
}

#[tokio::test]
async fn only_auth_publishes_keys_and_revocations() {
    let server = server();
    // A forged key would let its maker sign any token; a forged revocation would log
    // people out.
    for user in ["gateway", "users", "orders", "ops"] {
        let (client, mut errors) = connect(&server, user).await;
        for subject in ["auth.keys.forged", "auth.revoked.someone"] {
            client.publish(subject, "{}".into()).await.expect("sent");
            client.flush().await.expect("flush");
            violation(&mut errors, subject).await;
        }
    }
    // The verifiers read them (and ops the public keys), nothing more.
    let (gateway, mut errors) = connect(&server, "gateway").await;
    let _keys = gateway.subscribe("auth.keys.>").await.expect("sent");
    let _revoked = gateway.subscribe("auth.revoked.>").await.expect("sent");
    let _login = gateway.subscribe("auth.login").await.expect("sent");
    violation(&mut errors, "auth.login").await;
}

#[test]
fn the_cluster_configuration_has_the_same_limits_users_and_permissions() {
    let dir = testkit::project_dir();
    let single = std::fs::read_to_string(dir.join("nats.conf")).expect("nats.conf");
    let cluster =
        std::fs::read_to_string(dir.join("nats-cluster.conf")).expect("nats-cluster.conf");
    let shared = |text: &str| {
        let from = text
            .find("# Bodies are small JSON documents")
            .expect("the limits");
        text[from..].to_owned()
    };
    assert_eq!(
        shared(&cluster),
        shared(&single),
        "nats-cluster.conf drifted from nats.conf"
    );
    assert!(cluster.contains("cluster {") && cluster.contains("$SHOP_ROUTE_3"));
}
