//! The rules of the orders service, with no transport and no storage in sight: what a
//! username, an article id and an idempotency key must be, the catalogue, and a
//! purchase as recorded.

pub mod catalog;
pub mod purchase;

use bus_schema::{
    Invalid, Reason,
    orders::{self, Cursor, MAX_PAGE},
    users::Username,
};

use crate::error::OrdersError;

/// Longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 128;
/// What a successful buy says, as the original did.
pub const BUY_MESSAGE: &str = "Purchase successful";

pub fn username(raw: &str) -> Result<Username, OrdersError> {
    Ok(Username::parse(raw)?)
}

/// `article_id` must be a JSON integer naming an article.
pub fn article_id(value: &serde_json::Value) -> Result<u32, OrdersError> {
    match value {
        serde_json::Value::Null => {
            Err(Invalid::new(Reason::ArticleIdRequired, "article_id is required").into())
        }
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(id) => u32::try_from(id).map_err(|_| OrdersError::UnknownArticle(id)),
            None => Err(Invalid::new(
                Reason::ArticleIdNotInteger,
                format!("article_id must be an integer, not {n}"),
            )
            .into()),
        },
        // The original did `int(article_id)`: a string of digits names an article too.
        serde_json::Value::String(digits)
            if !digits.is_empty()
                && digits.len() <= 18
                && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let id: i64 = digits.parse().expect("BUG: up to 18 digits fit an i64");
            u32::try_from(id).map_err(|_| OrdersError::UnknownArticle(id))
        }
        other => Err(Invalid::new(
            Reason::ArticleIdNotInteger,
            format!("article_id must be an integer, not {other}"),
        )
        .into()),
    }
}

/// The page a history request asks for: its size (1 to [`MAX_PAGE`], that by default)
/// and where it starts (the cursor of a reply, or the first page in the order asked).
pub fn page(
    limit: Option<u64>,
    cursor: Option<&str>,
    newest_first: bool,
) -> Result<(usize, Cursor), OrdersError> {
    let limit = match limit {
        None => MAX_PAGE,
        Some(n) if (1..=u64::from(MAX_PAGE)).contains(&n) => n as u32,
        Some(_) => return Err(orders::page_limit_invalid().into()),
    };
    let cursor = match cursor {
        None if newest_first => Cursor::Before(u64::MAX),
        None => Cursor::From(0),
        Some(text) => Cursor::parse(text).ok_or_else(|| {
            Invalid::new(
                Reason::CursorInvalid,
                "cursor must be the `next` of an earlier page",
            )
        })?,
    };
    Ok((limit as usize, cursor))
}

pub fn idempotency_key(key: Option<String>) -> Result<Option<String>, OrdersError> {
    let Some(key) = key else { return Ok(None) };
    let key = key.trim().to_owned();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::limit(
            Reason::IdempotencyKeyInvalid,
            MAX_KEY_LEN,
            format!("the idempotency key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        )
        .into());
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn article_ids_must_be_integers() {
        assert_eq!(article_id(&json!(2)).ok(), Some(2));
        // As the original's int(): a string of digits too.
        assert_eq!(article_id(&json!("2")).ok(), Some(2));
        for bad in [
            json!(null),
            json!("2x"),
            json!(""),
            json!("-2"),
            json!(" 2"),
            json!(2.5),
            json!([2]),
            json!(true),
        ] {
            assert!(
                matches!(article_id(&bad), Err(OrdersError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            article_id(&json!(-1)),
            Err(OrdersError::UnknownArticle(-1))
        ));
        assert!(matches!(
            article_id(&json!(1u64 << 40)),
            Err(OrdersError::UnknownArticle(_))
        ));
    }

    #[test]
    fn a_page_is_checked_before_it_is_read() {
        assert_eq!(page(None, None, false).ok(), Some((1000, Cursor::From(0))));
        assert_eq!(
            page(Some(50), None, true).ok(),
            Some((50, Cursor::Before(u64::MAX)))
        );
        assert_eq!(
            page(Some(1), Some("f40"), true).ok(),
            Some((1, Cursor::From(40)))
        );
        for (limit, cursor) in [
            (Some(0), None),
            (Some(1001), None),
            (None, Some("40")),
            (None, Some("fx")),
        ] {
            assert!(
                matches!(page(limit, cursor, false), Err(OrdersError::Invalid(_))),
                "{limit:?} {cursor:?}"
            );
        }
    }

    #[test]
    fn idempotency_keys_are_short_visible_ascii() {
        assert_eq!(
            idempotency_key(Some(" abc-1 ".into())).ok(),
            Some(Some("abc-1".into()))
        );
        assert!(idempotency_key(Some(String::new())).is_err());
        assert!(idempotency_key(Some("a b".into())).is_err());
        assert!(idempotency_key(Some("é".into())).is_err());
        assert!(idempotency_key(Some("k".repeat(129))).is_err());
    }
}
