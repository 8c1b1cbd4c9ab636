//! What every page handler uses: [`PageError`], checked forms with their CSRF token, and
//! pages with a form.

use axum::{
    Form,
    extract::rejection::FormRejection,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use bus_schema::{ErrorCode, ErrorReply, Reason};
use minijinja::{Value, context};

use crate::{
    session::{Csrf, random_token},
    state::AppState,
    views::{french, with_cookies},
};

/// A failure, already rendered as the page that says it.
#[derive(Debug)]
pub struct PageError(pub(super) Response);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0
    }
}

impl AppState {
    /// The error page for `err`, for `user` if logged in.
    pub(super) fn failed(&self, err: impl Into<ErrorReply>, user: Option<&str>) -> PageError {
        PageError(self.views.error(&err.into(), user))
    }
}

/// The form's fields, or the 400 page; a form without the browser's CSRF token is a 403
/// page.
pub(super) fn checked<T>(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
) -> Result<T, PageError>
where
    T: HasCsrf,
{
    let Form(form) = form.map_err(|rejection| {
        state.failed(
            ErrorReply::bad_request(rejection.body_text()).because(Reason::MalformedBody),
            None,
        )
    })?;
    if !same_origin(headers) || !Csrf::check(headers, form.csrf(), &state.csrf_key) {
        let err = ErrorReply::new(
            ErrorCode::Forbidden,
            "Ce formulaire a expiré ou ne vient pas de ce site. Rechargez la page et réessayez.",
        )
        .because(Reason::CsrfTokenInvalid);
        return Err(PageError(state.views.page(
            StatusCode::FORBIDDEN,
            "error.html",
            context! { title => "Formulaire refusé", message => err.message },
        )));
    }
    Ok(form)
}

/// Whether a form comes from the shop's own pages: a browser names the page's origin in
/// `Origin` on every POST; when it does, its host must be the one the form was sent to.
/// (Without the header, an old browser or a script, the CSRF token decides alone.)
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Forms that carry a CSRF token.
pub(super) trait HasCsrf {
    fn csrf(&self) -> &str;
}

/// Renders a page with a form, setting the CSRF cookie when the browser has none.
pub(super) fn form_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    ctx: Value,
) -> Response {
    let csrf = Csrf::for_page(headers, state.secure_cookies, &state.csrf_key);
    let ctx = context! { csrf => csrf.token, key => random_token(), ..ctx };
    with_cookies(state.views.page(status, template, ctx), csrf.set_cookie)
}

/// The form again with the failure said in French, or the error page when a service
/// is down.
pub(super) fn form_error(
    state: &AppState,
    headers: &HeaderMap,
    template: &str,
    username: &str,
    err: impl Into<ErrorReply>,
) -> PageError {
    let err = err.into();
    if !err.code.is_client_error() {
        return state.failed(err, None);
    }
    let status = StatusCode::from_u16(err.code.as_u16()).unwrap_or(StatusCode::BAD_REQUEST);
    let ctx = context! { error => french(&err), username };
    let mut page = form_page(state, headers, status, template, ctx);
    if let Some(secs) = err.retry_after {
        page.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    PageError(page)
}
