//! Checking tokens: good ones on both doors, and every kind of bad one refused with
//! a reason.

use crate::helpers::*;

#[tokio::test]
async fn a_good_token_verifies_on_both_doors() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    assert_eq!(
        app.verify(&token).await,
        (
            StatusCode::OK,
            json!({ "username": "victor", "valid": true })
        )
    );
    let reply = auth::verify(&app.nats, &VerifyRequest { token })
        .await
        .expect("valid");
    assert_eq!(reply.username, "victor");
    assert!(reply.valid);
}

#[tokio::test]
async fn a_missing_token_is_a_400() {
    let app = TestApp::spawn().await;
    let (status, body) = app.post("/auth/verify", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&body), "token is required");
    let err = auth::verify(&app.nats, &VerifyRequest::default())
        .await
        .expect_err("400");
    assert_eq!(err.code(), ErrorCode::BadRequest);
}

#[tokio::test]
async fn tampered_foreign_old_unsigned_and_garbage_tokens_are_invalid() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(header["alg"], "EdDSA");
    assert!(
        header["kid"].as_str().is_some_and(|k| !k.is_empty()),
        "{header}"
    );

    // The payload of another user under victor's signature.
    let other = forge(Algorithm::HS256, &json!({ "sub": "kilian" }), OLD_HS256_KEY);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).expect("payload"),
        parts[2]
    );
    // A token of the previous version (HS256), and one claiming a key id of auth's.
    let old = forge(Algorithm::HS256, &claims(600, 0), OLD_HS256_KEY);
    let mut with_kid = Header::new(Algorithm::HS256);
    with_kid.kid = header["kid"].as_str().map(str::to_owned);
    let old_with_kid = jsonwebtoken::encode(
        &with_kid,
        &claims(600, 0),
        &EncodingKey::from_secret(OLD_HS256_KEY.as_bytes()),
    )
    .expect("encode");
    // {"alg":"none","typ":"JWT"}, the real claims, and no signature.
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    let too_long = "a".repeat(5000);

    for (what, bad) in [
        ("tampered", tampered.as_str()),
        ("HS256 of the previous version", &old),
        ("HS256 naming auth's key id", &old_with_kid),
        ("alg none", &unsigned),
        ("garbage", "not.a.token"),
        ("no dots", "garbage"),
        ("huge", &too_long),
    ] {
        let (status, body) = app.verify(bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(error_of(&body), "the token is invalid", "{what}");
        let err = auth::verify(
            &app.nats,
            &VerifyRequest {
                token: bad.to_owned(),
            },
        )
        .await
        .expect_err(what);
        assert_eq!(err.code(), ErrorCode::Unauthorized, "{what}");
    }
}

#[tokio::test]
async fn a_key_nobody_published_is_refused_and_a_published_one_accepted() {
    let app = TestApp::spawn().await;
    // An Ed25519 key of its own, published in AUTH_KEYS as auth would.
    let stub = testkit::StubAuth::start(&app.nats).await;
    let (status, body) = app.verify(&stub.token("victor")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a key published on the bus is used: {body}"
    );
    // A key pair nobody published: same shape, unknown kid.
    let unknown = jsonwebtoken::encode(
        &{
            let mut h = Header::new(Algorithm::EdDSA);
            h.kid = Some("never-published".into());
            h
        },
        &claims(600, 0),
        &service_kit::tokens::ed25519_signing_key(&[7u8; 32]),
    )
    .expect("encode");
    let (status, body) = app.verify(&unknown).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["reason"], "token_invalid");
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_say_so() {
    let app = TestApp::spawn().await;
    let stub = testkit::StubAuth::start(&app.nats).await;
    let (status, body) = app.verify(&stub.token_with("victor", -7200, -3600)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("expired"), "{body}");
    assert_eq!(body["reason"], "token_expired");

    let (status, body) = app.verify(&stub.token_with("victor", 3600, 7200)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("not valid yet"), "{body}");

    let (status, body) = app.verify(&stub.token_with("victor", 0, 600)).await;
    assert_eq!(status, StatusCode::OK, "a well-made token passes: {body}");
}

#[tokio::test]
async fn a_token_issued_with_a_short_lifetime_expires() {
    let app = TestApp::spawn_with(|c| {
        c.token_ttl_secs = 1;
        c.tokens.leeway_secs = 0;
    })
    .await;
    let (status, body) = app.login("victor", "1234").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().expect("token").to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = app.verify(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("expired"), "{body}");
}
