//! Logging in, creating an account and logging out.

use axum::{
    Form,
    extract::{Query, State, rejection::FormRejection, rejection::QueryRejection},
    http::{Extensions, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use bus_schema::{
    auth::LoginRequest,
    users::{self, CreateRequest, Username},
};
use minijinja::context;
use serde::Deserialize;

use super::page::{HasCsrf, PageError, checked, form_error, form_page};
use crate::{
    login,
    session::{SESSION_COOKIE, Session, clear_cookie, set_cookie},
    state::AppState,
    views::with_cookies,
};

/// The fields of the login and register forms; missing ones are empty.
#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// `confirm_password` in the original's form, still accepted.
    #[serde(default, alias = "confirm_password")]
    confirm: String,
    #[serde(default)]
    csrf: String,
}

impl HasCsrf for AccountForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    registered: Option<String>,
    expired: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
    session: Option<Session>,
) -> Response {
    if session.is_some() {
        return Redirect::to("/home").into_response();
    }
    let mut query = query.map(|Query(q)| q).unwrap_or_default();
    // Only a name an account can have: a link must not put any other text on our page.
    query.registered = query
        .registered
        .filter(|name| Username::parse(name).is_ok_and(|u| u.as_str() == name));
    let notice = match (&query.registered, &query.expired) {
        (Some(name), _) => Some(format!(
            "Compte « {name} » créé. Vous pouvez vous connecter."
        )),
        (None, Some(_)) => Some("Votre session a expiré, reconnectez-vous.".to_owned()),
        _ => None,
    };
    let username = query.registered.unwrap_or_default();
    form_page(
        &state,
        &headers,
        StatusCode::OK,
        "login.html",
        context! { notice, username },
    )
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Extensions,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&state, &headers, form)?;
    let request = LoginRequest {
        username: form.username.clone(),
        password: form.password,
    };
    let reply = login::login(&state, &client, &request)
        .await
        .map_err(|err| form_error(&state, &headers, "login.html", &form.username, err))?;
    let cookie = set_cookie(
        SESSION_COOKIE,
        &reply.access_token,
        Some(reply.expires_in),
        state.secure_cookies,
    );
    Ok(with_cookies(
        Redirect::to("/home").into_response(),
        [cookie],
    ))
}

pub async fn register_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    form_page(
        &state,
        &headers,
        StatusCode::OK,
        "register.html",
        context! { username => "" },
    )
}

pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = checked(&state, &headers, form)?;
    if form.password != form.confirm {
        let error = "Les deux mots de passe ne correspondent pas.";
        let ctx = context! { error, username => form.username };
        return Err(PageError(form_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "register.html",
            ctx,
        )));
    }
    let request = CreateRequest {
        username: form.username.clone(),
        password: form.password,
    };
    let reply = users::create_with(&state.nats, &request, &state.calls)
        .await
        .map_err(|err| form_error(&state, &headers, "register.html", &form.username, err))?;
    Ok(Redirect::to(&format!("/?registered={}", reply.username)).into_response())
}

/// Ends the session (and revokes its token), as the original's link did, but only when the link is followed
/// from the shop itself: a browser says where a navigation comes from
/// (`Sec-Fetch-Site`), and another site must not log people out.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let from_elsewhere = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"cross-site");
    if from_elsewhere {
        return state.views.page(
            StatusCode::FORBIDDEN,
            "error.html",
            context! {
                title => "Déconnexion refusée",
                message => "Ce lien de déconnexion vient d'un autre site. Utilisez le lien « Se déconnecter » de la boutique.",
            },
        );
    }
    // The token is revoked everywhere, so that a copy of the cookie is worth nothing.
    if let Some(token) = crate::session::cookie(&headers, SESSION_COOKIE).filter(|t| !t.is_empty())
    {
        let request = bus_schema::auth::LogoutRequest {
            token: token.to_owned(),
        };
        if let Err(err) = bus_schema::auth::logout_with(&state.nats, &request, &state.calls).await {
            tracing::warn!(%err, "the session's token could not be revoked");
        }
    }
    let clear = clear_cookie(SESSION_COOKIE, state.secure_cookies);
    with_cookies(Redirect::to("/").into_response(), [clear])
}
