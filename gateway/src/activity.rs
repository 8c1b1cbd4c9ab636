//! The live feed: the latest purchases and sign-ups the streams keep (`ORDERS`,
//! `USER_EVENTS`), then the new ones as they cross the bus, sent to the browser as
//! Server-Sent Events. Other people's names are masked; your own is shown.

use std::convert::Infallible;

use axum::{
    extract::State,
    http::Extensions,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use bus_schema::{
    ErrorCode, ErrorReply,
    orders::{self, PurchasedEvent},
    users::{self, CreatedEvent},
};
use futures_util::{StreamExt, stream};
use serde::Serialize;
use service_kit::{http::HttpError, slots::Full};

use crate::{
    session::Session,
    state::{AppState, MAX_FEEDS_PER_ADDRESS},
    views::{date, price},
};

/// One line of the feed, as the browser gets it.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    /// `purchase` or `signup`.
    pub kind: &'static str,
    /// The name, masked unless it is the viewer's own.
    pub user: String,
    pub article: Option<String>,
    pub price: Option<String>,
    pub at: String,
}

/// `v•••` for someone else, the name itself for the viewer.
pub fn mask(name: &str, viewer: Option<&str>) -> String {
    if viewer == Some(name) {
        return name.to_owned();
    }
    let first: String = name.chars().take(1).collect();
    format!("{first}•••")
}

/// The feed line of a message on `orders.events.>` or `users.events.>`.
pub fn activity(subject: &str, payload: &[u8], viewer: Option<&str>) -> Option<Activity> {
    if subject.starts_with(orders::subject::PURCHASED_PREFIX) {
        let event: PurchasedEvent = serde_json::from_slice(payload).ok()?;
        Some(Activity {
            kind: "purchase",
            user: mask(&event.username, viewer),
            price: Some(price(u64::from(event.article.price))),
            article: Some(event.article.name),
            at: date(&event.purchased_at),
        })
    } else if subject.starts_with(users::subject::CREATED_PREFIX) {
        let event: CreatedEvent = serde_json::from_slice(payload).ok()?;
        Some(Activity {
            kind: "signup",
            user: mask(&event.username, viewer),
            article: None,
            price: None,
            at: date(&event.created_at),
        })
    } else {
        None
    }
}

/// Events shown when the feed opens.
pub const BACKLOG: usize = 20;

/// The latest [`BACKLOG`] events the streams keep, oldest first, each as (its time, its
/// subject, its body). A stream that cannot be read adds nothing: the live feed follows.
async fn backlog(nats: &async_nats::Client) -> Vec<(String, String, bytes::Bytes)> {
    let js = async_nats::jetstream::new(nats.clone());
    let mut events = Vec::new();
    for name in [orders::STREAM, users::EVENTS_STREAM] {
        let Ok(stream) = js.get_stream(name).await else {
            continue;
        };
        let state = &stream.cached_info().state;
        let from = state
            .last_sequence
            .saturating_sub(BACKLOG as u64 - 1)
            .max(state.first_sequence)
            .max(1);
        for seq in from..=state.last_sequence {
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            let at = serde_json::from_slice::<serde_json::Value>(&message.payload)
                .ok()
                .and_then(|v| {
                    v.get("purchased_at")
                        .or_else(|| v.get("created_at"))
                        .and_then(|at| at.as_str().map(str::to_owned))
                })
                .unwrap_or_default();
            events.push((at, message.subject.to_string(), message.payload));
        }
    }
    // RFC 3339 times in UTC sort as text.
    events.sort_by(|a, b| a.0.cmp(&b.0));
    let skip = events.len().saturating_sub(BACKLOG);
    events.split_off(skip)
}

/// `GET /activity/events`: the stream, for as long as the browser listens.
pub async fn events(
    State(state): State<AppState>,
    client: Extensions,
    session: Option<Session>,
) -> Response {
    let slot = match state
        .feeds
        .take(&service_kit::http::client_address(&client))
    {
        Ok(slot) => slot,
        Err(Full::Key) => {
            return HttpError(ErrorReply::too_many(
                format!("at most {MAX_FEEDS_PER_ADDRESS} activity feeds from one address"),
                15,
            ))
            .into_response();
        }
        Err(Full::All) => {
            return HttpError(ErrorReply::new(
                ErrorCode::Unavailable,
                "the activity feed is full; try again later",
            ))
            .into_response();
        }
    };
    let viewer = session.map(|s| s.username);
    let subscribed = tokio::try_join!(
        state.nats.subscribe(orders::subject::EVENTS),
        state.nats.subscribe(users::subject::EVENTS),
    );
    let (purchases, signups) = match subscribed {
        Ok(subscriptions) => subscriptions,
        Err(err) => {
            tracing::warn!(%err, "cannot subscribe to the events");
            return HttpError(ErrorReply::new(
                ErrorCode::Unavailable,
                "the activity feed is unavailable",
            ))
            .into_response();
        }
    };
    // Once the browser sees the response, the server knows the subscriptions: nothing
    // published after that is missed. A flush only empties our socket; a request that
    // nobody answers comes back ("no responders") only after the server has taken
    // everything this connection sent before it, the subscriptions included.
    let probe = async_nats::Request::new().timeout(Some(std::time::Duration::from_secs(1)));
    let _ = state
        .nats
        .send_request(bus_schema::discovery::ping(Some("activity-probe")), probe)
        .await;
    // Subscribed first, read the streams second: an event published in between is in
    // both, and shown once.
    let recent = backlog(&state.nats).await;
    let mut shown: std::collections::HashSet<(String, bytes::Bytes)> = recent
        .iter()
        .map(|(_, subject, payload)| (subject.clone(), payload.clone()))
        .collect();
    let live = stream::select(purchases, signups).filter_map(move |message| {
        let seen = !shown.is_empty()
            && shown.remove(&(message.subject.to_string(), message.payload.clone()));
        std::future::ready((!seen).then_some((message.subject.to_string(), message.payload)))
    });
    let past = stream::iter(
        recent
            .into_iter()
            .map(|(_, subject, payload)| (subject, payload)),
    );
    let feed = past
        .chain(live)
        .filter_map(move |(subject, payload): (String, bytes::Bytes)| {
            // Held as long as the feed is: dropped with it when the browser goes.
            let _slot = &slot;
            let line = activity(&subject, &payload, viewer.as_deref());
            std::future::ready(line.and_then(|line| {
                Event::default()
                    .event("activity")
                    .json_data(&line)
                    .ok()
                    .map(Ok::<_, Infallible>)
            }))
        });
    Sse::new(feed)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_viewer_sees_their_own_name() {
        assert_eq!(mask("victor", Some("victor")), "victor");
        assert_eq!(mask("victor", Some("kilian")), "v•••");
        assert_eq!(mask("victor", None), "v•••");
    }
}
