//! The AsyncAPI 3.0 document of the bus, made from this crate's subjects and types: every
//! request subject with its request and reply bodies, the queue group the services
//! answer in, the error headers, and the events. The gateway serves it at
//! `GET /asyncapi.json`; `docs/asyncapi.json` is a copy a test keeps equal to it.

use serde_json::{Map, Value, json};
use utoipa::{PartialSchema, ToSchema};

use crate::{auth, error, orders, users};

use crate::discovery::QUEUE_GROUP;

/// One request subject: who answers, the request and reply bodies, whether the request
/// acts for a user (and so carries their token).
struct Request {
    subject: &'static str,
    service: &'static str,
    summary: &'static str,
    request: &'static str,
    reply: &'static str,
    for_user: bool,
}

/// One event subject (a pattern with one `{parameter}`).
struct Event {
    address: &'static str,
    parameter: &'static str,
    summary: &'static str,
    message: &'static str,
}

const REQUESTS: &[Request] = &[
    Request {
        subject: auth::subject::LOGIN,
        service: auth::SERVICE,
        summary: "A token for a username and password (401 for a wrong password and an unknown user alike).",
        request: "LoginRequest",
        reply: "LoginReply",
        for_user: false,
    },
    Request {
        subject: auth::subject::VERIFY,
        service: auth::SERVICE,
        summary: "The identity a valid, unrevoked token carries.",
        request: "VerifyRequest",
        reply: "VerifyReply",
        for_user: false,
    },
    Request {
        subject: auth::subject::LOGOUT,
        service: auth::SERVICE,
        summary: "Revokes a token on every verifier.",
        request: "LogoutRequest",
        reply: "LogoutReply",
        for_user: false,
    },
    Request {
        subject: users::subject::CREATE,
        service: users::SERVICE,
        summary: "Creates an account (409 when the name is taken).",
        request: "CreateRequest",
        reply: "CreateReply",
        for_user: false,
    },
    Request {
        subject: users::subject::VERIFY,
        service: users::SERVICE,
        summary: "Checks a password.",
        request: "UsersVerifyRequest",
        reply: "UsersVerifyReply",
        for_user: false,
    },
    Request {
        subject: users::subject::GET,
        service: users::SERVICE,
        summary: "The public view of an account.",
        request: "GetRequest",
        reply: "GetReply",
        for_user: false,
    },
    Request {
        subject: orders::subject::ARTICLES,
        service: orders::SERVICE,
        summary: "The catalogue.",
        request: "ArticlesRequest",
        reply: "ArticlesReply",
        for_user: false,
    },
    Request {
        subject: orders::subject::PURCHASES,
        service: orders::SERVICE,
        summary: "A page of a user's history; carries that user's token. With `if_none_match` the tag of the page as it still is, the reply is `{\"not_modified\":true}`. With `view_as_is` the page is read from the instance's view as it is and the `Shop-View-Next` header gives the next `ORDERS` sequence it lacked; with `stream_end` the page includes every event up to it.",
        request: "PurchasesRequest",
        reply: "PurchasesReply",
        for_user: true,
    },
    Request {
        subject: orders::subject::BUY,
        service: orders::SERVICE,
        summary: "Buys an article for a user (carries that user's token); an idempotency key makes a retry answer the first purchase.",
        request: "BuyRequest",
        reply: "BuyReply",
        for_user: true,
    },
];

const EVENTS: &[Event] = &[
    Event {
        address: "orders.events.purchased.{username}",
        parameter: "username",
        summary: "A purchase, as it is stored in the ORDERS stream.",
        message: "PurchasedEvent",
    },
    Event {
        address: "users.events.created.{username}",
        parameter: "username",
        summary: "A sign-up (kept in the USER_EVENTS stream).",
        message: "CreatedEvent",
    },
    Event {
        address: "auth.keys.{kid}",
        parameter: "kid",
        summary: "A public key tokens are signed with (kept in AUTH_KEYS).",
        message: "PublicKey",
    },
    Event {
        address: "auth.revoked.{jti}",
        parameter: "jti",
        summary: "A revoked token id (kept in AUTH_REVOKED for a token lifetime).",
        message: "Revoked",
    },
];

/// The schemas of every body, by the names the document uses.
fn schemas() -> Map<String, Value> {
    let mut found = Vec::new();
    let mut add = |name: &str, schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
        found.push((name.to_owned(), schema));
    };
    macro_rules! with {
        ($($name:literal => $ty:ty),+ $(,)?) => {$(
            add($name, <$ty as PartialSchema>::schema());
            let mut nested = Vec::new();
            <$ty as ToSchema>::schemas(&mut nested);
            for (name, schema) in nested {
                add(&name, schema);
            }
        )+};
    }
    with!(
        "LoginRequest" => auth::LoginRequest, "LoginReply" => auth::LoginReply,
        "VerifyRequest" => auth::VerifyRequest, "VerifyReply" => auth::VerifyReply,
        "LogoutRequest" => auth::LogoutRequest, "LogoutReply" => auth::LogoutReply,
        "PublicKey" => auth::PublicKey, "Revoked" => auth::Revoked,
        "CreateRequest" => users::CreateRequest, "CreateReply" => users::CreateReply,
        "UsersVerifyRequest" => users::VerifyRequest, "UsersVerifyReply" => users::VerifyReply,
        "GetRequest" => users::GetRequest, "GetReply" => users::GetReply,
        "CreatedEvent" => users::CreatedEvent,
        "ArticlesRequest" => orders::ArticlesRequest, "ArticlesReply" => orders::ArticlesReply,
        "PurchasesRequest" => orders::PurchasesRequest, "PurchasesReply" => orders::PurchasesReply,
        "BuyRequest" => orders::BuyRequest, "BuyReply" => orders::BuyReply,
        "PurchasedEvent" => orders::PurchasedEvent,
    );
    found
        .into_iter()
        .map(|(name, schema)| {
            let value = serde_json::to_value(schema).expect("BUG: a schema always serialises");
            (name, value)
        })
        .collect()
}

/// A channel id: the address with its dots and braces made plain.
fn channel_id(address: &str) -> String {
    address
        .replace(['.', '{', '}', '>', '*'], "_")
        .trim_matches('_')
        .to_owned()
}

/// The whole document.
pub fn document(version: &str) -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for (name, _) in schemas() {
        messages.insert(
            name.clone(),
            json!({ "name": name, "payload": { "$ref": format!("#/components/schemas/{name}") },
                    "traits": [{ "$ref": "#/components/messageTraits/requestHeaders" }] }),
        );
    }
    messages.insert(
        "Error".to_owned(),
        json!({ "name": "Error", "summary": "Any failure: an empty body and the error headers.",
                "payload": { "type": "string", "maxLength": 0 },
                "headers": { "$ref": "#/components/schemas/ErrorHeaders" } }),
    );
    for request in REQUESTS {
        let id = channel_id(request.subject);
        let reply_id = format!("{id}_reply");
        channels.insert(
            id.clone(),
            json!({ "address": request.subject, "summary": request.summary,
                    "messages": { "request": { "$ref": format!("#/components/messages/{}", request.request) } } }),
        );
        channels.insert(
            reply_id.clone(),
            json!({ "address": null, "description": "The requester's inbox (the request's NATS reply subject).",
                    "messages": {
                        "reply": { "$ref": format!("#/components/messages/{}", request.reply) },
                        "error": { "$ref": "#/components/messages/Error" } } }),
        );
        let mut operation = json!({
            "action": "receive",
            "title": format!("{} answers {}", request.service, request.subject),
            "summary": request.summary,
            "channel": { "$ref": format!("#/channels/{id}") },
            "reply": { "channel": { "$ref": format!("#/channels/{reply_id}") } },
            "bindings": { "nats": { "queue": QUEUE_GROUP } },
        });
        if request.for_user {
            operation["description"] = json!(format!(
                "The request carries the token of the user it acts for in the `{}: Bearer <token>` header; without it 401, with another user's 403.",
                auth::AUTHORIZATION_HEADER
            ));
        }
        operations.insert(request.subject.to_owned(), operation);
    }
    for event in EVENTS {
        let id = channel_id(event.address);
        channels.insert(
            id.clone(),
            json!({ "address": event.address, "summary": event.summary,
                    "parameters": { event.parameter: { "description": format!("The {}, as one subject token", event.parameter) } },
                    "messages": { "event": { "$ref": format!("#/components/messages/{}", event.message) } } }),
        );
        operations.insert(
            format!("watch_{id}"),
            json!({ "action": "receive", "summary": format!("Watch: {}", event.summary),
                    "channel": { "$ref": format!("#/channels/{id}") } }),
        );
    }
    let mut schemas = schemas();
    schemas.insert(
        "ErrorHeaders".to_owned(),
        json!({ "type": "object", "properties": {
            (async_nats::service::NATS_SERVICE_ERROR_CODE): { "type": "string", "description": "The status, as over HTTP (400, 401, 403, 404, 409, 413, 429, 503, ...)" },
            (async_nats::service::NATS_SERVICE_ERROR): { "type": "string", "description": "The message, for a person" },
            (error::REASON_HEADER): { "type": "string", "description": "The stable reason (password_too_short, token_expired, ...)" },
            (error::LIMIT_HEADER): { "type": "string", "description": "The number in the broken rule, when it has one" },
            (error::RETRY_AFTER_HEADER): { "type": "string", "description": "Seconds to wait, for 429 and some 503" } },
            "required": [async_nats::service::NATS_SERVICE_ERROR_CODE, async_nats::service::NATS_SERVICE_ERROR, error::REASON_HEADER] }),
    );
    schemas.insert(
        "RequestHeaders".to_owned(),
        json!({ "type": "object", "properties": {
            (crate::REQUEST_ID_HEADER): { "type": "string", "description": "Carried into every log line and every further call" },
            (auth::AUTHORIZATION_HEADER): { "type": "string", "description": "`Bearer <token>`, on requests that act for a user" },
            (crate::trace::TRACEPARENT): { "type": "string", "description": "W3C trace context (`00-<trace id>-<span id>-<flags>`), on requests and events made while a trace is recorded" },
            (crate::trace::TRACESTATE): { "type": "string", "description": "W3C trace state, passed on with `traceparent`" } } }),
    );
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "The shop's bus",
            "version": version,
            "description": "Request/reply subjects of the NATS micro services auth, users and orders (each answers in the queue group `q`, and the NATS micro services API `$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`), and the events they publish. Bodies are JSON; an error is an empty body with the error headers.",
        },
        "defaultContentType": "application/json",
        "servers": { "local": { "host": "127.0.0.1:4222", "protocol": "nats",
                                "description": "The single server of `make run` (users and passwords in nats.conf)" } },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "messageTraits": { "requestHeaders": { "headers": { "$ref": "#/components/schemas/RequestHeaders" } } },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves_and_every_request_subject_is_there() {
        let doc = document("0.0.0");
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"").skip(1) {
            let target = piece.split('"').next().unwrap_or_default();
            let path: Vec<&str> = target.trim_start_matches("#/").split('/').collect();
            let mut node = &doc;
            for part in &path {
                node = &node[*part];
            }
            assert!(!node.is_null(), "{target} resolves to nothing");
        }
        for subject in [
            auth::subject::LOGIN,
            users::subject::CREATE,
            orders::subject::BUY,
        ] {
            assert!(doc["operations"][subject]["bindings"]["nats"]["queue"] == QUEUE_GROUP);
        }
    }
}
