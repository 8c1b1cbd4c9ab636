//! Property tests of the request decoders every bus endpoint uses: whatever bytes
//! arrive, decoding never panics, and a refusal is always a 4xx with a message.

use bus_schema::{
    ErrorCode, auth, orders,
    users::{self, Username},
};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use service_kit::serve::decode;

fn check<T: DeserializeOwned>(bytes: &[u8]) {
    if let Err(err) = decode::<T>(bytes) {
        assert!(
            matches!(err.code, ErrorCode::BadRequest | ErrorCode::PayloadTooLarge),
            "{err:?}"
        );
        assert!(!err.message.is_empty());
    }
}

fn check_all(bytes: &[u8]) {
    check::<users::CreateRequest>(bytes);
    check::<users::VerifyRequest>(bytes);
    check::<users::GetRequest>(bytes);
    check::<auth::LoginRequest>(bytes);
    check::<auth::VerifyRequest>(bytes);
    check::<orders::ArticlesRequest>(bytes);
    check::<orders::PurchasesRequest>(bytes);
    check::<orders::BuyRequest>(bytes);
}

/// JSON-looking text: objects with the contract's field names and odd values.
fn jsonish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("username"),
        Just("password"),
        Just("token"),
        Just("article_id"),
        Just("idempotency_key"),
        Just(""),
        Just("\u{0}")
    ];
    let value = prop_oneof![
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        Just("null".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("true".to_owned()),
        "[\\PC]{0,8}",
    ];
    proptest::collection::vec((key, value), 0..5).prop_map(|pairs| {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
        format!("{{{}}}", body.join(", "))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_all(&bytes);
    }

    #[test]
    fn json_like_bodies_never_panic_a_decoder(text in jsonish()) {
        check_all(text.as_bytes());
    }

    #[test]
    fn a_username_that_parses_is_one_plain_subject_token(raw in any::<String>()) {
        if let Ok(name) = Username::parse(&raw) {
            let name = name.as_str();
            prop_assert!(!name.is_empty() && name.len() <= 32);
            prop_assert!(!name.contains(['.', '*', '>', ' ']));
            prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'));
        }
    }
}
