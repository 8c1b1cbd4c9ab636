//! The keys: a JWK Set that survives restarts, rotation, keys on the bus that are
//! not keys, and logouts.

use crate::helpers::*;

#[tokio::test]
async fn the_public_keys_are_a_jwk_set_and_tokens_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let token = app.token().await;
    let kid = kid_of(&token);
    let jwks: Value = reqwest::get(app.auth.url("/.well-known/jwks.json"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    let key = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the signing key is published");
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["x"].as_str().expect("x"))
        .expect("base64url");
    assert_eq!(x.len(), 32);
    assert!(key.get("d").is_none(), "no private part");

    // A restarted auth signs with a new key and still accepts the old one's tokens.
    app.auth.stop().await;
    let config = ::auth::Config::for_tests(app.server.url());
    app.auth = Running::spawn(::auth::build(config).await.expect("auth rebuilds"));
    assert_eq!(app.verify(&token).await.0, StatusCode::OK);
    let again = app.token().await;
    assert_ne!(kid_of(&again), kid, "each start makes its own pair");
}

#[tokio::test]
async fn a_rotated_key_signs_new_tokens_while_the_old_ones_stay_valid() {
    let app = TestApp::spawn_with(|c| c.key_rotation_secs = 1).await;
    let first = app.token().await;
    let mut rotated = None;
    let started = std::time::Instant::now();
    while started.elapsed() < testkit::PATIENCE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let token = app.token().await;
        if kid_of(&token) != kid_of(&first) {
            rotated = Some(token);
            break;
        }
    }
    let rotated = rotated.expect("a new key signs new tokens");
    assert_eq!(
        app.verify(&first).await.0,
        StatusCode::OK,
        "the old key's token"
    );
    assert_eq!(
        app.verify(&rotated).await.0,
        StatusCode::OK,
        "the new key's token"
    );
}

#[tokio::test]
async fn short_or_malformed_keys_on_the_bus_are_ignored_without_harm() {
    let app = TestApp::spawn().await;
    let js = async_nats::jetstream::new(app.nats.clone());
    let bad_keys = [
        json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "short", "x": "AAAA", "valid_until": u64::MAX / 2 }),
        json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "empty", "x": "", "valid_until": u64::MAX / 2 }),
        json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "long", "x": "A".repeat(100), "valid_until": u64::MAX / 2 }),
        json!({ "kty": "RSA", "kid": "rsa", "n": "x", "e": "AQAB" }),
        json!("not even an object"),
    ];
    for (i, key) in bad_keys.iter().enumerate() {
        js.publish(format!("auth.keys.bad{i}"), key.to_string().into())
            .await
            .expect("sent")
            .await
            .expect("stored");
    }
    // Each bad key named by a token: refused, never a panic; auth keeps working.
    for kid in ["short", "empty", "long", "rsa"] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        let token = jsonwebtoken::encode(
            &header,
            &claims(600, 0),
            &service_kit::tokens::ed25519_signing_key(&[9u8; 32]),
        )
        .expect("encode");
        let (status, body) = app.verify(&token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{kid}: {body}");
    }
    let token = app.token().await;
    assert_eq!(app.verify(&token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_logout_revokes_that_token_only() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let other = app.token().await;
    let response = app
        .http
        .post(app.auth.url("/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = app.verify(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "token_revoked");
    assert_eq!(
        app.verify(&other).await.0,
        StatusCode::OK,
        "the person's other token"
    );
    // Over the bus too, and a revoked token cannot log out again.
    let err = auth::logout(
        &app.nats,
        &auth::LogoutRequest {
            token: token.clone(),
        },
    )
    .await
    .expect_err("revoked already");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    let reply = auth::logout(
        &app.nats,
        &auth::LogoutRequest {
            token: other.clone(),
        },
    )
    .await
    .expect("revoked");
    assert!(reply.revoked);
    assert_eq!(app.verify(&other).await.0, StatusCode::UNAUTHORIZED);
}
