//! The browser session: a cookie holding the JWT (HttpOnly, SameSite=Strict, Path=/,
//! Secure when configured, as long-lived as the token), and a CSRF token checked on
//! every POST form (double submit: a random cookie that the form must repeat).

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use bus_schema::{CallError, ErrorCode, auth};
use cookie::{Cookie, SameSite};
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
#[derive(Debug, Clone)]
pub struct Csrf {
    pub token: String,
    pub set_cookie: Option<String>,
}

impl Csrf {
    /// The browser's token, or a new one.
    pub fn for_page(headers: &HeaderMap, secure: bool) -> Self {
        match cookie(headers, CSRF_COOKIE).filter(|t| is_token(t)) {
            Some(token) => Self {
                token: token.to_owned(),
                set_cookie: None,
            },
            None => {
                let token = random_token();
                let set_cookie = Some(set_cookie(CSRF_COOKIE, &token, None, secure));
                Self { token, set_cookie }
            }
        }
    }

    /// Whether a form's `csrf` field repeats the browser's CSRF cookie.
    pub fn check(headers: &HeaderMap, submitted: &str) -> bool {
        match cookie(headers, CSRF_COOKIE).filter(|t| is_token(t)) {
            // Compared in constant time, so that the time taken tells nothing of the token.
            Some(expected) => expected.as_bytes().ct_eq(submitted.as_bytes()).into(),
            None => false,
        }
    }
}

fn is_token(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The person logged in, from the session cookie, checked with `auth.verify`.
///
/// Without a valid session a page redirects to the login page (saying so when the
/// session expired); when auth does not answer, it is a 503 page.
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
            return Err(Redirect::to("/").into_response());
        };
        let request = auth::VerifyRequest {
            token: token.to_owned(),
        };
        match auth::verify_with(&state.nats, &request, &state.calls).await {
            Ok(reply) => Ok(Self {
                username: reply.username,
            }),
            Err(CallError::Service(err)) if err.code == ErrorCode::Unauthorized => {
                let to = if err.reason == bus_schema::Reason::TokenExpired {
                    "/?expired=1"
                } else {
                    "/"
                };
                let clear = clear_cookie(SESSION_COOKIE, state.secure_cookies);
                Err(with_cookies(Redirect::to(to).into_response(), [clear]))
            }
            Err(err) => Err(state.views.error(&err.into_reply(), None)),
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

    #[test]
    fn the_csrf_check_needs_the_cookie_and_the_same_value() {
        let token = random_token();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("{CSRF_COOKIE}={token}").parse().expect("value"),
        );
        assert!(Csrf::check(&headers, &token));
        assert!(!Csrf::check(&headers, &random_token()));
        assert!(!Csrf::check(&headers, ""));
        assert!(!Csrf::check(&HeaderMap::new(), &token));
    }
}
