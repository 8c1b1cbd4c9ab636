//! The `orders` service: the catalogue, purchases and their events.

use serde::{Deserialize, Serialize};

/// Name of the micro service, as `nats micro ls` shows it.
pub const SERVICE: &str = "orders";

/// The subjects of the `orders` service.
pub mod subject {
    /// The catalogue: [`super::ArticlesRequest`] -> [`super::ArticlesReply`].
    pub const ARTICLES: &str = "orders.articles";
    /// One user's history: [`super::PurchasesRequest`] -> [`super::PurchasesReply`].
    pub const PURCHASES: &str = "orders.purchases";
    /// Record a purchase: [`super::BuyRequest`] -> [`super::BuyReply`].
    pub const BUY: &str = "orders.buy";
    /// Every event of the service, the filter of the `ORDERS` stream.
    pub const EVENTS: &str = "orders.events.>";
    /// Prefix of the purchase events; the username follows.
    pub const PURCHASED_PREFIX: &str = "orders.events.purchased";

    /// The subject of one user's purchase events.
    pub fn purchased(username: &str) -> String {
        format!("{PURCHASED_PREFIX}.{username}")
    }
}

/// The JetStream stream that keeps [`subject::EVENTS`].
pub const STREAM: &str = "ORDERS";

/// The namespace of [`purchase_id`] (a fixed random UUID of this shop).
pub const PURCHASE_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5c1f_0d2e_8a47_4b1e_9d36_0f2b_7e4a_c913);

/// The id of the one purchase that `username` (normalised: trimmed, lower-case) may make
/// with idempotency key `key` (trimmed): the UUIDv5 of `"<username>\n<key>"` in
/// [`PURCHASE_ID_NAMESPACE`].
///
/// Every instance of the orders service derives the same id, so a retried key publishes
/// an event with the same `Nats-Msg-Id` (refused by the stream's duplicate window) and
/// is written to `purchases.json` at most once (lines are unique by id).
pub fn purchase_id(username: &str, key: &str) -> uuid::Uuid {
    let mut name = Vec::with_capacity(username.len() + 1 + key.len());
    name.extend_from_slice(username.as_bytes());
    name.push(b'\n');
    name.extend_from_slice(key.as_bytes());
    uuid::Uuid::new_v5(&PURCHASE_ID_NAMESPACE, &name)
}

/// An article of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Article {
    pub id: u32,
    pub name: String,
    /// Price in euro cents.
    pub price: u32,
}

/// Asks for the catalogue.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArticlesRequest {}

/// The catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArticlesReply {
    pub articles: Vec<Article>,
}

/// Most purchases in one page of `orders.purchases`, and the page size when a request
/// names none.
pub const MAX_PAGE: u32 = 1000;
/// What one page's reply stays under, encoded: half of NATS's default `max_payload`
/// (1 MB), whatever the articles' names, so that a page always fits one message.
pub const MAX_PAGE_BYTES: usize = 512 * 1024;

/// The refusal of a page size that is not a whole number from 1 to [`MAX_PAGE`], the
/// same on every door.
pub fn page_limit_invalid() -> crate::Invalid {
    crate::Invalid::limit(
        crate::Reason::PageLimitInvalid,
        MAX_PAGE as usize,
        format!("limit must be a whole number from 1 to {MAX_PAGE}"),
    )
}

/// Asks for one page of one user's history. Without `limit` and `cursor` it is the
/// first [`MAX_PAGE`] purchases, oldest first: a whole history as long as it is no
/// longer (`next` says when it is).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurchasesRequest {
    #[serde(default)]
    pub username: String,
    /// Purchases per page, 1 to [`MAX_PAGE`] (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Where the page starts: the `next` of the page before. It also says in which
    /// order the pages go, so `newest_first` matters only for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The first page holds the latest purchases, and pages go back in time; by
    /// default the first page holds the oldest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub newest_first: bool,
    /// The [`page_tag`] of a reply the caller keeps: when the page is still that one,
    /// the reply is [`NOT_MODIFIED`] instead of the page again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_none_match: Option<String>,
    /// For a caller that asks the `ORDERS` stream's end itself, after its own request
    /// arrived, at the same time: the page is read from the instance's view as it is,
    /// without waiting for the stream, and the reply's [`VIEW_NEXT_HEADER`] says which
    /// events the view held (every one below that sequence). A view behind the end the
    /// caller learns is asked again with `stream_end`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub view_as_is: bool,
    /// A sequence of the `ORDERS` stream the page must include every event up to, for a
    /// caller that asked the stream's end itself after its own request arrived: the
    /// instance waits (a moment, then 503 `view_behind`) until its view holds it, and
    /// does not ask the stream. Without it (and without `view_as_is`) the instance asks
    /// the stream's end itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_end: Option<u64>,
}

/// The header of a reply of `orders.purchases` asked with `view_as_is`: the next
/// `ORDERS` sequence the view had not applied when the page was read (it holds every
/// event below it).
pub const VIEW_NEXT_HEADER: &str = "Shop-View-Next";

impl PurchasesRequest {
    /// The first page of `username`'s history, oldest first.
    pub fn of(username: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            ..Self::default()
        }
    }
}

/// A place in one user's history, as the `next` of a page: the position (0 for the
/// oldest purchase) where the next page starts, oldest first, or before which it ends,
/// newest first. Positions do not move: a history only grows at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cursor {
    /// The page holds the purchases from this position on, oldest first.
    From(u64),
    /// The page holds the purchases before this position, newest first.
    Before(u64),
}

impl Cursor {
    /// The cursor of a reply's `next`; `None` for anything no reply gave.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, position) = text.split_at_checked(1)?;
        if position.is_empty() || !position.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let position: u64 = position.parse().ok()?;
        match kind {
            "f" => Some(Self::From(position)),
            "b" => Some(Self::Before(position)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::From(position) => write!(f, "f{position}"),
            Self::Before(position) => write!(f, "b{position}"),
        }
    }
}

/// One recorded purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurchaseItem {
    /// The event id: UUIDv7, or [`purchase_id`] for a buy with an idempotency key.
    pub id: String,
    pub article: Article,
    /// RFC 3339, UTC.
    pub purchased_at: String,
}

/// One page of one user's history, in the order asked (oldest first by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurchasesReply {
    pub user: String,
    /// Article names, as the original answered.
    pub purchases: Vec<String>,
    pub items: Vec<PurchaseItem>,
    /// How many purchases the user has in all, on every page.
    #[serde(default)]
    pub count: u64,
    /// Their total price, in cents.
    #[serde(default)]
    pub total: u64,
    /// The cursor of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Whether a reply of `orders.purchases`, as sent (JSON bytes), says there is a next
/// page: `"next":` is a key of the reply alone (inside a string its quote is escaped).
/// A reply of a thousand purchases is some 150 KB, and its members come in the order of
/// [`PurchasesReply`]: only what follows the last `]` (the end of `items`: then come
/// numbers and a cursor of letters and digits) is searched. Searching the whole reply
/// was a tenth of the gateway's CPU for such a request.
pub fn reply_has_next(reply: &[u8]) -> bool {
    let tail = memchr::memrchr(b']', reply).map_or(reply, |end| &reply[end..]);
    memchr::memmem::find(tail, b"\"next\":").is_some()
}

/// The reply of `orders.purchases` to a request whose `if_none_match` names the page as
/// it still is.
pub const NOT_MODIFIED: &[u8] = br#"{"not_modified":true}"#;

/// Whether a reply of `orders.purchases` is [`NOT_MODIFIED`].
pub fn reply_not_modified(reply: &[u8]) -> bool {
    reply == NOT_MODIFIED
}

/// The tag of a reply of `orders.purchases` (its JSON bytes), for `if_none_match`: the
/// length and a 64-bit hash of the bytes, in hex. Not a cryptographic hash: a reply is
/// only ever compared with an earlier reply of the same user's same page.
pub fn page_tag(reply: &[u8]) -> String {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut words = reply.chunks_exact(8);
    let mut hash = reply.len() as u64;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        hash = (hash ^ word).wrapping_mul(K).rotate_left(29);
    }
    for &byte in words.remainder() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(K).rotate_left(29);
    }
    format!("{:x}-{:016x}", reply.len(), hash ^ (hash >> 32))
}

/// The `next` of a reply of `orders.purchases` as sent (JSON bytes), read without
/// decoding its purchases, for a door that passes the reply on.
pub fn reply_next(reply: &[u8]) -> Result<Option<String>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Next {
        next: Option<String>,
    }
    serde_json::from_slice::<Next>(reply).map(|n| n.next)
}

/// A purchase to record for `username` (the bus is trusted with the identity).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuyRequest {
    #[serde(default)]
    pub username: String,
    /// Kept as JSON so that a missing or non-integer id gets a clear 400.
    #[serde(default)]
    pub article_id: serde_json::Value,
    /// Repeating a key returns the first purchase instead of recording a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// The HTTP body of a buy (`POST /orders/<user>/buy`, `POST /api/buy`): the article,
/// kept as JSON so that a wrong type gets a clear 400 from the service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuyBody {
    #[serde(default)]
    pub article_id: serde_json::Value,
}

/// The header that makes an HTTP buy idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The recorded purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuyReply {
    /// "Purchase successful", as the original said.
    pub message: String,
    pub article: Article,
    pub user: String,
    /// The purchase (event) id; a repeated idempotency key answers the same id.
    pub id: String,
    /// RFC 3339, UTC.
    pub purchased_at: String,
}

/// The event of one purchase, on `orders.events.purchased.<username>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurchasedEvent {
    /// UUIDv7, or [`purchase_id`] of the username and key for a buy with an idempotency
    /// key; also the `Nats-Msg-Id` of the publish.
    pub id: String,
    pub username: String,
    pub article: Article,
    /// RFC 3339, UTC.
    pub purchased_at: String,
    /// The buyer's idempotency key, kept so that a repeated key finds this purchase
    /// again, also after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

typed_call!(
    /// `orders.articles`
    articles, articles_with: subject::ARTICLES, ArticlesRequest => ArticlesReply
);
typed_call!(
    /// `orders.purchases`
    purchases, purchases_with: subject::PURCHASES, PurchasesRequest => PurchasesReply
);
/// `orders.purchases`, the reply passed on as the service sent it (JSON bytes).
pub async fn purchases_bytes(
    nats: &async_nats::Client,
    req: &PurchasesRequest,
    opts: &crate::CallOptions,
) -> Result<bytes::Bytes, crate::CallError> {
    crate::call::request_bytes(nats, SERVICE, subject::PURCHASES, req, opts).await
}

/// `orders.purchases` asked with `view_as_is` (set here): the reply as the service sent it, and
/// the [`VIEW_NEXT_HEADER`] it carries (`None` from a service that did not say).
pub async fn purchases_as_is(
    nats: &async_nats::Client,
    req: &PurchasesRequest,
    opts: &crate::CallOptions,
) -> Result<(bytes::Bytes, Option<u64>), crate::CallError> {
    let req = PurchasesRequest {
        view_as_is: true,
        stream_end: None,
        ..req.clone()
    };
    let (reply, headers) =
        crate::call::request_with_headers(nats, SERVICE, subject::PURCHASES, &req, opts).await?;
    let view_next = headers
        .as_ref()
        .and_then(|h| h.get(VIEW_NEXT_HEADER))
        .and_then(|v| v.as_str().trim().parse().ok());
    Ok((reply, view_next))
}

typed_call!(
    /// `orders.buy`: 400 for a bad article id, 404 for an unknown article.
    buy, buy_with: subject::BUY, BuyRequest => BuyReply
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_says_its_next_page_without_being_decoded() {
        let reply = |next: Option<&str>| {
            serde_json::to_vec(&PurchasesReply {
                user: "ana".into(),
                purchases: vec![r#"an article named "next":"x"]"#.into()],
                items: Vec::new(),
                count: 1,
                total: 100,
                next: next.map(str::to_owned),
            })
            .expect("JSON")
        };
        assert!(!reply_has_next(&reply(None)));
        assert_eq!(reply_next(&reply(None)).expect("read"), None);
        assert!(reply_has_next(&reply(Some("b7"))));
        assert_eq!(
            reply_next(&reply(Some("b7"))).expect("read"),
            Some("b7".into())
        );
        assert!(reply_next(b"[1").is_err());
    }

    #[test]
    fn a_page_tag_changes_with_any_byte_of_the_reply() {
        let reply = br#"{"user":"ana","purchases":["Article 1"],"count":1}"#.to_vec();
        let tag = page_tag(&reply);
        assert_eq!(page_tag(&reply.clone()), tag);
        for i in 0..reply.len() {
            let mut changed = reply.clone();
            changed[i] ^= 1;
            assert_ne!(page_tag(&changed), tag, "byte {i}");
        }
        assert_ne!(page_tag(&reply[..reply.len() - 1]), tag);
        assert!(reply_not_modified(NOT_MODIFIED));
        assert!(!reply_not_modified(&reply));
    }

    #[test]
    fn a_cursor_reads_back_what_it_wrote_and_nothing_else() {
        for cursor in [Cursor::From(0), Cursor::From(1000), Cursor::Before(7)] {
            assert_eq!(Cursor::parse(&cursor.to_string()), Some(cursor));
        }
        for bad in [
            "",
            "f",
            "b",
            "x12",
            "f-1",
            "f1.5",
            "f 1",
            "F1",
            "b99999999999999999999",
            "é1",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_purchase_id_depends_on_both_the_user_and_the_key() {
        let id = purchase_id("victor", "order-1");
        assert_eq!(id, purchase_id("victor", "order-1"));
        assert_eq!(id.get_version_num(), 5);
        assert_ne!(id, purchase_id("kilian", "order-1"));
        assert_ne!(id, purchase_id("victor", "order-2"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(purchase_id("ab", "c"), purchase_id("a", "bc"));
    }
}
