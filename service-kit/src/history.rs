//! Purchase histories on an HTTP door (the gateway's `GET /api/purchases`, orders'
//! `GET /orders/<user>/purchases`): one page when the query asks for one (`limit`,
//! `cursor`, `order`), with the next page's link in the body and a `Link` header; else
//! the whole history in the format of one reply, however long, read page after page
//! (each one bus message at most) and written as it comes (chunked), never held whole
//! in memory.

use std::future::Future;

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bus_schema::{
    ErrorReply, Invalid, Reason,
    orders::{self, MAX_PAGE, PurchasesReply, PurchasesRequest},
};
use serde::{Deserialize, Serialize};

/// The query of a history request, as typed by a person: checked by [`Self::request`].
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Purchases per page, 1 to 1000. With none of `limit`, `cursor` and `order`, the
    /// answer is the whole history.
    pub limit: Option<String>,
    /// The `next` of the page before (it says which way the pages go).
    pub cursor: Option<String>,
    /// `oldest` (the default: the first page holds the oldest purchases) or `newest`.
    pub order: Option<String>,
}

impl HistoryQuery {
    /// The bus request for `username`: `None` asks for the whole history, `Some` for
    /// one page. A limit that is not a whole number from 1 to 1000, or an order that is
    /// neither `oldest` nor `newest`, is a 400 naming it.
    pub fn request(&self, username: &str) -> Result<Option<PurchasesRequest>, ErrorReply> {
        if self.limit.is_none() && self.cursor.is_none() && self.order.is_none() {
            return Ok(None);
        }
        // A number goes to orders, which decides on its range; anything else is refused
        // here, in the same words.
        let limit = match self.limit.as_deref().map(str::trim) {
            None => None,
            Some(text) => Some(
                text.parse::<u32>()
                    .map_err(|_| orders::page_limit_invalid())?,
            ),
        };
        let newest_first = match self.order.as_deref() {
            None | Some("oldest") => false,
            Some("newest") => true,
            Some(_) => {
                return Err(Invalid::new(
                    Reason::InvalidRequest,
                    "order must be `oldest` or `newest`",
                )
                .into());
            }
        };
        Ok(Some(PurchasesRequest {
            username: username.to_owned(),
            limit,
            cursor: self.cursor.clone(),
            newest_first,
            ..PurchasesRequest::default()
        }))
    }
}

/// One page as an HTTP door answers it: the reply and, when there is a next page, its
/// address (also in a `Link: <...>; rel="next"` header).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    #[serde(flatten)]
    pub reply: PurchasesReply,
    /// The path and query of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_url: Option<String>,
}

/// The answer of one page asked at `path` with `request`'s limit, from the reply as
/// orders sent it (JSON bytes): a [`HistoryPage`], the reply passed on with only its
/// `next_url` added, not decoded and encoded again (a page of 50 purchases cost the
/// gateway twice the CPU that way).
pub fn page_response_bytes(
    path: &str,
    request: &PurchasesRequest,
    reply: Bytes,
) -> Result<Response, ErrorReply> {
    let next = orders::reply_next(&reply).map_err(|err| ErrorReply::internal(&err))?;
    let next_url = next_url(path, request, next.as_deref());
    let link = link(next_url.as_deref());
    let body = match &next_url {
        None => reply,
        Some(url) => {
            // One JSON object (it was just read as one): its closing brace makes way for
            // one more member.
            let end = reply
                .iter()
                .rposition(|&b| b == b'}')
                .unwrap_or(reply.len());
            let mut body = Vec::with_capacity(reply.len() + url.len() + 16);
            body.extend_from_slice(&reply[..end]);
            body.extend_from_slice(b",\"next_url\":");
            body.extend_from_slice(json(url).as_bytes());
            body.push(b'}');
            Bytes::from(body)
        }
    };
    let response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    Ok(with_link(response, link))
}

fn next_url(path: &str, request: &PurchasesRequest, next: Option<&str>) -> Option<String> {
    next.map(|cursor| {
        let limit = request.limit.unwrap_or(MAX_PAGE);
        // A cursor is letters and digits: nothing to escape.
        format!("{path}?limit={limit}&cursor={cursor}")
    })
}

fn link(next_url: Option<&str>) -> Option<HeaderValue> {
    next_url.and_then(|url| HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")).ok())
}

fn with_link(mut response: Response, link: Option<HeaderValue>) -> Response {
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

/// The `ETag` of a whole history that is one reply (`first` has no next page): its
/// [`orders::page_tag`] (`tag` when already known), quoted.
pub fn whole_etag(first: &[u8], tag: Option<String>) -> Option<HeaderValue> {
    if orders::reply_has_next(first) {
        return None;
    }
    let tag = tag.unwrap_or_else(|| orders::page_tag(first));
    HeaderValue::from_str(&format!("\"{tag}\"")).ok()
}

/// A 304 with `etag` when the request's `If-None-Match` names it (in a list, weak or
/// not) or is `*`.
pub fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> Option<Response> {
    let named = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == etag.as_bytes());
    named.then(|| tagged(StatusCode::NOT_MODIFIED.into_response(), Some(etag.clone())))
}

/// `response` with its `ETag`, if any. `Cache-Control` is left as it is (`no-store` on a
/// personal answer): the tag serves a client's own copy.
pub fn tagged(mut response: Response, etag: Option<HeaderValue>) -> Response {
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The whole history from its first page (oldest first) as orders sent it (JSON
/// bytes): passed on as it is when that page holds every purchase, else decoded and
/// written with the pages `fetch` reads ([`whole_response`]).
pub fn whole_response_bytes<F, Fut, E>(first: Bytes, fetch: F) -> Result<Response, ErrorReply>
where
    F: FnMut(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<PurchasesReply, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    if !orders::reply_has_next(&first) {
        return Ok(([(header::CONTENT_TYPE, "application/json")], first).into_response());
    }
    let first = serde_json::from_slice(&first).map_err(|err| ErrorReply::internal(&err))?;
    Ok(whole_response(first, fetch))
}

/// The whole history as one body in the format of one reply
/// (`{"user","count","total","purchases":[...],"items":[...]}`, oldest first), from its
/// `first` page (oldest first) and the pages `fetch` reads by cursor. It holds the
/// purchases counted by the first page: those bought while it is written are left for
/// the next read. The names are written first, then the items, so each page is read
/// twice. A page that cannot be read cuts the body short (the connection is closed
/// before its end), as no status can be sent any more.
pub fn whole_response<F, Fut, E>(first: PurchasesReply, fetch: F) -> Response
where
    F: FnMut(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<PurchasesReply, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let walk = Walk {
        count: first.count,
        first,
        fetch,
        part: Part::Head,
        page: None,
        after: None,
        written: 0,
    };
    let chunks = futures_util::stream::unfold(walk, |mut walk| async move {
        let chunk = walk.next_chunk().await?;
        Some((chunk, walk))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(chunks),
    )
        .into_response()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Head,
    Names,
    Items,
    Done,
}

/// Where the writing of a whole history stands.
struct Walk<F> {
    first: PurchasesReply,
    fetch: F,
    /// The purchases the body holds: those of the first page's count.
    count: u64,
    part: Part,
    /// The next page to write, when it is read already.
    page: Option<PurchasesReply>,
    /// The cursor of the page after the last one written.
    after: Option<String>,
    /// Purchases written in the current part.
    written: u64,
}

impl<F, Fut, E> Walk<F>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<PurchasesReply, E>>,
    E: std::fmt::Display,
{
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        match self.part {
            Part::Done => None,
            Part::Head => {
                let head = format!(
                    "{{\"user\":{},\"count\":{},\"total\":{},\"purchases\":[",
                    json(&self.first.user),
                    self.count,
                    self.first.total
                );
                self.start(Part::Names);
                Some(Ok(Bytes::from(head)))
            }
            Part::Names | Part::Items => match self.page().await {
                Err(err) => {
                    self.part = Part::Done;
                    Some(Err(std::io::Error::other(format!(
                        "a page of the history could not be read: {err}"
                    ))))
                }
                Ok(None) if self.part == Part::Names => {
                    self.start(Part::Items);
                    Some(Ok(Bytes::from_static(b"],\"items\":[")))
                }
                Ok(None) => {
                    self.part = Part::Done;
                    Some(Ok(Bytes::from_static(b"]}")))
                }
                Ok(Some(page)) => Some(Ok(self.write(&page))),
            },
        }
    }

    fn start(&mut self, part: Part) {
        self.part = part;
        self.page = Some(self.first.clone());
        self.after = None;
        self.written = 0;
    }

    /// The next page of the current part to write, or `None` when it is written.
    async fn page(&mut self) -> Result<Option<PurchasesReply>, E> {
        if self.written >= self.count {
            return Ok(None);
        }
        if let Some(page) = self.page.take() {
            return Ok(Some(page));
        }
        match self.after.take() {
            Some(cursor) => (self.fetch)(cursor).await.map(Some),
            None => Ok(None),
        }
    }

    /// `page`'s part of the body, and what to read after it.
    fn write(&mut self, page: &PurchasesReply) -> Bytes {
        let room = usize::try_from(self.count - self.written).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let taken = match self.part {
            Part::Names => {
                for name in page.purchases.iter().take(room) {
                    self.separate(&mut out);
                    out.extend_from_slice(json(name).as_bytes());
                }
                page.purchases.len().min(room)
            }
            _ => {
                for item in page.items.iter().take(room) {
                    self.separate(&mut out);
                    serde_json::to_writer(&mut out, item).expect("BUG: an item always serialises");
                }
                page.items.len().min(room)
            }
        };
        self.written += taken as u64;
        // An empty page before the count (a history cannot shrink, but an instance
        // behind may answer one) ends the part rather than asking forever.
        if taken == 0 {
            self.written = self.count;
        }
        self.after = page.next.clone();
        Bytes::from(out)
    }

    fn separate(&self, out: &mut Vec<u8>) {
        if self.written > 0 || !out.is_empty() {
            out.push(b',');
        }
    }
}

fn json(text: &str) -> String {
    serde_json::to_string(text).expect("BUG: a string always serialises")
}

#[cfg(test)]
mod tests {
    use axum::Json;
    use bus_schema::orders::{Article, PurchaseItem};

    use super::*;

    /// What a page must answer: the reply decoded, with its next page's address.
    fn page_response(path: &str, request: &PurchasesRequest, reply: PurchasesReply) -> Response {
        let next_url = next_url(path, request, reply.next.as_deref());
        let link = link(next_url.as_deref());
        with_link(Json(HistoryPage { reply, next_url }).into_response(), link)
    }

    async fn parts(response: Response) -> (Option<HeaderValue>, serde_json::Value) {
        let link = response.headers().get(header::LINK).cloned();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        (link, serde_json::from_slice(&body).expect("JSON"))
    }

    #[tokio::test]
    async fn a_page_passed_on_as_sent_answers_as_the_decoded_one() {
        let request = PurchasesRequest {
            limit: Some(2),
            newest_first: true,
            ..PurchasesRequest::of("ana")
        };
        let item = |n: u32| PurchaseItem {
            id: format!("id-{n}"),
            article: Article {
                id: n,
                name: format!("Article \"{n}\" }}"),
                price: 100 * n,
            },
            purchased_at: "2026-12-07T12:00:00Z".into(),
        };
        for next in [Some("b3".to_owned()), None] {
            let reply = PurchasesReply {
                user: "ana".into(),
                purchases: vec!["Article \"2\" }".into(), "Article \"1\" }".into()],
                items: vec![item(2), item(1)],
                count: 5,
                total: 1500,
                next: next.clone(),
            };
            let bytes = Bytes::from(serde_json::to_vec(&reply).expect("JSON"));
            let decoded = parts(page_response("/api/purchases", &request, reply)).await;
            let passed =
                parts(page_response_bytes("/api/purchases", &request, bytes).expect("a reply"))
                    .await;
            assert_eq!(passed, decoded);
            assert_eq!(
                passed.1.get("next_url").and_then(|u| u.as_str()),
                next.map(|_| "/api/purchases?limit=2&cursor=b3")
            );
        }
        let broken = page_response_bytes("/api/purchases", &request, Bytes::from_static(b"[1"));
        assert!(broken.is_err());
    }
}
