//! The browser session: a cookie holding the JWT (HttpOnly, SameSite=Strict, Path=/,
//! Secure when configured, as long-lived as the token), and a CSRF token checked on
//! every POST form (double submit: a random cookie that the form must repeat).

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use service_kit::tokens::TokenError;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{state::AppState, views::with_cookies};

/// The cookie that holds the session's JWT.
pub const SESSION_COOKIE: &str = "shop_session";
/// The cookie that holds the CSRF token.
pub const CSRF_COOKIE: &str = "shop_csrf";

/// The value of cookie `name`, if the request sent it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, and Secure when asked.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> String {
    let mut cookie = Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure);
    if let Some(age) = max_age.and_then(|age| i64::try_from(age).ok()) {
        cookie = cookie.max_age(time::Duration::seconds(age));
    }
    cookie.build().to_string()
}

/// A `Set-Cookie` value that removes cookie `name`.
pub fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", Some(0), secure)
}

/// 32 random bytes in hex.
pub fn random_token() -> String {
    service_kit::random::hex(32)
}

/// The CSRF token to put in the forms of a page, and the cookie to set when the browser
/// has none yet.
///
/// A token is `<nonce>.<mac>`: 32 random bytes and their HMAC-SHA256 under the
/// gateway's key, both in hex. The gateway adopts a browser's cookie only when it made
/// it, so a value planted in the browser by someone else (a sibling site's cookie) is
/// replaced, and a form must repeat the cookie's value.
#[derive(Debug, Clone)]
pub struct Csrf {
    pub token: String,
    pub set_cookie: Option<String>,
}

impl Csrf {
    /// The browser's token if the gateway made it, or a new one.
    pub fn for_page(headers: &HeaderMap, secure: bool, key: &[u8; 32]) -> Self {
        match cookie(headers, CSRF_COOKIE).filter(|t| is_ours(t, key)) {
            Some(token) => Self {
                token: token.to_owned(),
                set_cookie: None,
            },
            None => {
                let nonce = random_token();
                let token = format!("{nonce}.{}", mac(&nonce, key));
                let set_cookie = Some(set_cookie(CSRF_COOKIE, &token, None, secure));
                Self { token, set_cookie }
            }
        }
    }

    /// Whether a form's `csrf` field repeats the browser's CSRF cookie, made by the
    /// gateway.
    pub fn check(headers: &HeaderMap, submitted: &str, key: &[u8; 32]) -> bool {
        match cookie(headers, CSRF_COOKIE).filter(|t| is_ours(t, key)) {
            // Compared in constant time, so that the time taken tells nothing of the token.
            Some(expected) => expected.as_bytes().ct_eq(submitted.as_bytes()).into(),
            None => false,
        }
    }
}

/// The HMAC-SHA256 of `nonce` under `key`, in hex.
fn mac(nonce: &str, key: &[u8; 32]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("BUG: HMAC takes any key");
    mac.update(nonce.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `token` is a nonce with the gateway's MAC.
fn is_ours(token: &str, key: &[u8; 32]) -> bool {
    let Some((nonce, given)) = token.split_once('.') else {
        return false;
    };
    nonce.len() == 64
        && nonce.bytes().all(|b| b.is_ascii_hexdigit())
        && bool::from(mac(nonce, key).as_bytes().ct_eq(given.as_bytes()))
}

/// The key that signs CSRF tokens: `csrf.key` in `secrets_dir` (made on first start,
/// 0600), or a new one for this process without a directory.
pub async fn csrf_key(secrets_dir: Option<&std::path::Path>) -> Result<[u8; 32], String> {
    let hex = match secrets_dir {
        Some(dir) => {
            let path = dir.join("csrf.key");
            tokio::task::spawn_blocking(move || {
                service_kit::secret_file::load_or_create(&path, random_token).map(|(key, _)| key)
            })
            .await
            .map_err(|err| err.to_string())??
        }
        None => random_token(),
    };
    let hex = hex.trim();
    let bad = || "csrf.key must hold 64 hex digits".to_owned();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

/// The person logged in, from the session cookie, checked here with the keys auth
/// publishes (no bus call).
///
/// Without a valid session a page redirects to the login page (saying so when the
/// session expired); while the keys are not loaded yet, it is a 503 page.
#[derive(Clone)]
pub struct Session {
    pub username: String,
    /// The token, for the calls made on the person's behalf (and the logout).
    pub token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
            return Err(Redirect::to("/").into_response());
        };
        match state.tokens.verify(token).await {
            Ok(verified) => Ok(Self {
                username: verified.username,
                token: token.to_owned(),
            }),
            Err(TokenError::Unavailable) => {
                Err(state.views.error(&TokenError::Unavailable.reply(), None))
            }
            Err(err) => {
                let to = if err == TokenError::Expired {
                    "/?expired=1"
                } else {
                    "/"
                };
                let clear = clear_cookie(SESSION_COOKIE, state.secure_cookies);
                Err(with_cookies(Redirect::to(to).into_response(), [clear]))
            }
        }
    }
}

/// A session when there is a valid one; pages open to everyone use it to greet.
impl OptionalFromRequestParts<AppState> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; shop_session=abc.def; b=2".parse().expect("value"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc.def"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_when_asked() {
        let cookie = set_cookie(SESSION_COOKIE, "t", Some(1800), true);
        let parsed = Cookie::parse(cookie.as_str()).expect("a cookie");
        assert_eq!((parsed.name(), parsed.value()), (SESSION_COOKIE, "t"));
        assert_eq!(parsed.http_only(), Some(true));
        assert_eq!(parsed.same_site(), Some(SameSite::Strict));
        assert_eq!(parsed.path(), Some("/"));
        assert_eq!(parsed.max_age(), Some(time::Duration::seconds(1800)));
        assert_eq!(parsed.secure(), Some(true));
        assert!(!set_cookie(SESSION_COOKIE, "t", None, false).contains("Secure"));
    }

    fn with_cookie(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("{CSRF_COOKIE}={token}").parse().expect("value"),
        );
        headers
    }

    #[test]
    fn the_csrf_check_needs_our_cookie_and_the_same_value() {
        let key = [1; 32];
        let issued = Csrf::for_page(&HeaderMap::new(), false, &key);
        assert!(issued.set_cookie.is_some());
        let headers = with_cookie(&issued.token);
        assert!(Csrf::check(&headers, &issued.token, &key));
        assert!(!Csrf::check(&headers, &random_token(), &key));
        assert!(!Csrf::check(&headers, "", &key));
        assert!(!Csrf::check(&HeaderMap::new(), &issued.token, &key));
        // Another key did not make it.
        assert!(!Csrf::check(&headers, &issued.token, &[2; 32]));
        // The browser keeps the token it has.
        assert!(Csrf::for_page(&headers, false, &key).set_cookie.is_none());
    }

    #[test]
    fn a_token_the_gateway_did_not_make_is_replaced_and_never_accepted() {
        let key = [1; 32];
        let planted = random_token();
        let headers = with_cookie(&planted);
        assert!(!Csrf::check(&headers, &planted, &key));
        let page = Csrf::for_page(&headers, false, &key);
        assert_ne!(page.token, planted);
        assert!(page.set_cookie.is_some());
    }
}
