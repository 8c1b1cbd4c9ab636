//! `GET /api/purchases` and `POST /api/buy`, for the caller of the Bearer token.

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use bus_schema::{
    CallError, CallOptions,
    orders::{self, BuyBody, BuyReply, BuyRequest, PurchasesRequest},
};
use bytes::Bytes;
use service_kit::{
    history::{self, HistoryPage, HistoryQuery},
    http::{Caller, HttpError, JsonBody, idempotency_key},
    openapi::ErrorBody,
};

use crate::{kept::Copy, state::AppState};

/// The caller's history: the whole of it, oldest first, however long, or with
/// `limit`, `cursor` or `order` one page, its next page's address in `next_url` and a
/// `Link` header. A page, and a whole history of one page, are passed on as orders sent
/// them (not decoded and encoded again); a longer history is read page after page and
/// streamed. A whole history of one reply is kept, and sent again while the stream, or
/// orders asked with its tag, says it is whole ([`crate::kept`]).
/// A whole history of one reply carries that tag as its `ETag`, and a request whose
/// `If-None-Match` names it is answered 304.
#[utoipa::path(get, path = "/purchases", tag = "purchases", security(("bearer" = [])),
    params(HistoryQuery,
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a whole history read before: 304 while it is the same")),
    responses(
        (status = 200, body = HistoryPage, headers(
            ("ETag" = String, description = "The whole history's tag (not on a page, nor on a history longer than one bus reply)"))),
        (status = 304, description = "The whole history is still the one of `If-None-Match`"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HistoryQuery>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let calls = state.calls.idempotent().bearer(&caller.token);
    if let Some(request) = query.request(&caller.username)? {
        let (reply, _) = state.reads.page(&request, &calls).await?;
        return Ok(history::page_response_bytes(
            "/api/purchases",
            &request,
            reply,
        )?);
    }
    let (first, tag, end) = first_of_whole(&state, &caller.username, &calls).await?;
    // A whole history of one reply has a tag for HTTP too: a client that holds it gets
    // a 304 without the body.
    let etag = history::whole_etag(&first, tag);
    if let Some(response) = etag
        .as_ref()
        .and_then(|e| history::not_modified(&headers, e))
    {
        return Ok(response);
    }
    // The next pages (of a history longer than one reply, never a copy) need not ask
    // the stream again: they include what the first did.
    let (reads, username) = (state.reads.clone(), caller.username);
    let response = history::whole_response_bytes(first, move |cursor| {
        let (reads, calls) = (reads.clone(), calls.clone());
        let request = PurchasesRequest {
            cursor: Some(cursor),
            ..PurchasesRequest::of(username.clone())
        };
        async move { reads.decoded_page_up_to(&request, end, &calls).await }
    })?;
    Ok(history::tagged(response, etag))
}

/// The first reply of `user`'s whole history, its tag when it is kept, and the stream's
/// sequence it holds every event up to. A copy kept from before is sent again when the
/// stream says it is whole; otherwise orders is asked with its tag and answers that it
/// is the same (the copy is sent), or sends the history as it is now.
async fn first_of_whole(
    state: &AppState,
    user: &str,
    calls: &CallOptions,
) -> Result<(Bytes, Option<String>, u64), CallError> {
    let kept = state.kept.get(user);
    if let Some(copy) = kept.clone() {
        if let Some(end) = state.reads.still_whole(user, &copy).await {
            let seq = end.seq;
            if copy.stream_end.as_ref() != Some(&end) {
                state.kept.keep(
                    user,
                    Copy {
                        stream_end: Some(end),
                        ..copy.clone()
                    },
                );
            }
            return Ok((copy.reply, Some(copy.tag), seq));
        }
    }
    let request = PurchasesRequest {
        if_none_match: kept.as_ref().map(|copy| copy.tag.clone()),
        ..PurchasesRequest::of(user)
    };
    let (read, newest) = tokio::join!(state.reads.page(&request, calls), state.reads.newest(user));
    let (reply, end) = read?;
    if orders::reply_has_next(&reply) {
        return Ok((reply, None, end.seq));
    }
    // The reply holds every event up to `end`: a newest event past it may not be in it.
    let newest = newest.filter(|newest| newest.seq() <= end.seq);
    let seq = end.seq;
    let copy = match kept {
        Some(copy) if orders::reply_not_modified(&reply) => Copy {
            newest,
            stream_end: Some(end),
            ..copy
        },
        _ => Copy::of(reply, newest, Some(end)),
    };
    state.kept.keep(user, copy.clone());
    Ok((copy.reply, Some(copy.tag), seq))
}

/// A purchase; the `Idempotency-Key` header makes a retry answer the first one.
#[utoipa::path(post, path = "/buy", tag = "purchases", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters: a retry answers the key's first purchase")),
    request_body = BuyBody,
    responses(
        (status = 201, body = BuyReply),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such article", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, description = "Not recorded, or maybe recorded: repeat with the same key", body = ErrorBody),
    ))]
pub async fn buy(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<BuyBody>,
) -> Result<(StatusCode, Json<BuyReply>), HttpError> {
    let request = BuyRequest {
        username: caller.username,
        article_id: body.article_id,
        idempotency_key: idempotency_key(&headers)?,
    };
    let calls = state.buy_calls(&request).bearer(&caller.token);
    let reply = orders::buy_with(&state.nats, &request, &calls).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}
