//! The HTML pages, in French as in the original. No state changes on a GET (but the
//! logout link, as in the original); every POST form carries a CSRF token.

use axum::{
    Form, Router,
    extract::{
        Path, Query, State,
        rejection::{FormRejection, QueryRejection},
    },
    http::{Extensions, HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use bus_schema::{
    ErrorCode, ErrorReply, Reason,
    auth::LoginRequest,
    orders::{self, Article, BuyRequest, PurchasesRequest},
    users::{self, CreateRequest},
};
use minijinja::{Value, context, value::Serde};
use serde::{Deserialize, Serialize};

use crate::{
    session::{Csrf, SESSION_COOKIE, Session, clear_cookie, random_token, set_cookie},
    startup::AppState,
    views::{ACTIVITY_SCRIPT, STYLESHEET, date, french, price, with_cookies},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(login_page).post(login))
        .route("/register", get(register_page).post(register))
        .route("/home", get(home))
        .route("/buy/{id}", get(confirm).post(buy))
        .route("/purchases", get(purchases))
        .route("/logout", get(logout))
        .route("/static/style.css", get(stylesheet))
        .route("/static/activity.js", get(activity_script))
        .route("/status", get(status_page))
        .route("/api/status", get(status_json))
        .route("/activity", get(activity_page))
        .route("/activity/events", get(crate::activity::events))
        .fallback(not_found)
}

/// An article as a page shows it.
#[derive(Debug, Serialize)]
struct ArticleView {
    id: u32,
    name: String,
    price: String,
}

impl From<&Article> for ArticleView {
    fn from(a: &Article) -> Self {
        Self {
            id: a.id,
            name: a.name.clone(),
            price: price(u64::from(a.price)),
        }
    }
}

/// The fields of the login and register forms; missing ones are empty.
#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    csrf: String,
}

/// The fields of a buy form.
#[derive(Debug, Default, Deserialize)]
pub struct BuyForm {
    #[serde(default)]
    csrf: String,
    /// Makes a double submit of one rendered form one purchase.
    #[serde(default)]
    key: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    registered: Option<String>,
    expired: Option<String>,
}

/// The form's fields, or the 400 page; a form without the browser's CSRF token is a 403
/// page.
fn checked<T>(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
) -> Result<T, Response>
where
    T: HasCsrf,
{
    let Form(form) = form.map_err(|rejection| {
        state.views.error(
            &ErrorReply::bad_request(rejection.body_text()).because(Reason::MalformedBody),
            None,
        )
    })?;
    if !Csrf::check(headers, form.csrf()) {
        let err = ErrorReply::new(
            ErrorCode::Forbidden,
            "Ce formulaire a expiré ou ne vient pas de ce site. Rechargez la page et réessayez.",
        )
        .because(Reason::CsrfTokenInvalid);
        return Err(state.views.page(
            StatusCode::FORBIDDEN,
            "error.html",
            context! { title => "Formulaire refusé", message => err.message },
        ));
    }
    Ok(form)
}

/// Forms that carry a CSRF token.
pub trait HasCsrf {
    fn csrf(&self) -> &str;
}

impl HasCsrf for AccountForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl HasCsrf for BuyForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Renders a page with a form, setting the CSRF cookie when the browser has none.
fn form_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    ctx: Value,
) -> Response {
    let csrf = Csrf::for_page(headers, state.secure_cookies);
    let ctx = context! { csrf => csrf.token, key => random_token(), ..ctx };
    with_cookies(state.views.page(status, template, ctx), csrf.set_cookie)
}

// ------------------------------------------------------------------ login, register

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
    session: Option<Session>,
) -> Response {
    if session.is_some() {
        return Redirect::to("/home").into_response();
    }
    let query = query.map(|Query(q)| q).unwrap_or_default();
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

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Extensions,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let form = match checked(&state, &headers, form) {
        Ok(form) => form,
        Err(page) => return page,
    };
    let request = LoginRequest {
        username: form.username.clone(),
        password: form.password,
    };
    match state.login(&client, &request).await {
        Ok(reply) => {
            let cookie = set_cookie(
                SESSION_COOKIE,
                &reply.access_token,
                Some(reply.expires_in),
                state.secure_cookies,
            );
            with_cookies(Redirect::to("/home").into_response(), [cookie])
        }
        Err(err) => form_error(&state, &headers, "login.html", &form.username, err),
    }
}

/// The form again with the failure said in French, or the error page when a service
/// is down.
fn form_error(
    state: &AppState,
    headers: &HeaderMap,
    template: &str,
    username: &str,
    err: impl Into<ErrorReply>,
) -> Response {
    let err = err.into();
    if !err.code.is_client_error() {
        return state.views.error(&err, None);
    }
    let status = StatusCode::from_u16(err.code.as_u16()).unwrap_or(StatusCode::BAD_REQUEST);
    let ctx = context! { error => french(&err), username };
    let mut page = form_page(state, headers, status, template, ctx);
    if let Some(secs) = err.retry_after {
        page.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    page
}

async fn register_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    form_page(
        &state,
        &headers,
        StatusCode::OK,
        "register.html",
        context! { username => "" },
    )
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let form = match checked(&state, &headers, form) {
        Ok(form) => form,
        Err(page) => return page,
    };
    if form.password != form.confirm {
        let error = "Les deux mots de passe ne correspondent pas.";
        let ctx = context! { error, username => form.username };
        return form_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "register.html",
            ctx,
        );
    }
    let request = CreateRequest {
        username: form.username.clone(),
        password: form.password,
    };
    match users::create_with(&state.nats, &request, &state.calls).await {
        Ok(reply) => Redirect::to(&format!("/?registered={}", reply.username)).into_response(),
        Err(err) => form_error(&state, &headers, "register.html", &form.username, err),
    }
}

// ------------------------------------------------------------------ the shop

async fn home(State(state): State<AppState>, headers: HeaderMap, session: Session) -> Response {
    let user = session.username;
    match orders::articles_with(
        &state.nats,
        &orders::ArticlesRequest {},
        &state.calls.idempotent(),
    )
    .await
    {
        Ok(reply) => {
            let articles: Vec<ArticleView> = reply.articles.iter().map(ArticleView::from).collect();
            form_page(
                &state,
                &headers,
                StatusCode::OK,
                "home.html",
                context! { user, articles => Value::from(Serde(&articles)) },
            )
        }
        Err(err) => state.views.error(&err.into_reply(), Some(&user)),
    }
}

/// The article of a `/buy/<id>` path, or the 404 page.
async fn article(state: &AppState, id: &str, user: &str) -> Result<Article, Response> {
    let not_found = || {
        state
            .views
            .error(&ErrorReply::not_found("no such article"), Some(user))
    };
    let id: u32 = id.parse().map_err(|_| not_found())?;
    let reply = orders::articles_with(
        &state.nats,
        &orders::ArticlesRequest {},
        &state.calls.idempotent(),
    )
    .await
    .map_err(|err| state.views.error(&err.into_reply(), Some(user)))?;
    reply
        .articles
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(not_found)
}

async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let user = session.username;
    match article(&state, &id, &user).await {
        Ok(article) => {
            let article = ArticleView::from(&article);
            form_page(
                &state,
                &headers,
                StatusCode::OK,
                "confirm.html",
                context! { user, article => Value::from(Serde(&article)) },
            )
        }
        Err(page) => page,
    }
}

async fn buy(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    Path(id): Path<String>,
    form: Result<Form<BuyForm>, FormRejection>,
) -> Response {
    let user = session.username;
    let form = match checked(&state, &headers, form) {
        Ok(form) => form,
        Err(page) => return page,
    };
    let Ok(article_id) = id.parse::<u32>() else {
        return state
            .views
            .error(&ErrorReply::not_found("no such article"), Some(&user));
    };
    let request = BuyRequest {
        username: user.clone(),
        article_id: article_id.into(),
        idempotency_key: Some(form.key).filter(|k| !k.is_empty()),
    };
    match orders::buy_with(&state.nats, &request, &state.buy_calls(&request)).await {
        Ok(reply) => {
            let article = ArticleView::from(&reply.article);
            state.views.page(
                StatusCode::OK,
                "bought.html",
                context! { user, article => Value::from(Serde(&article)) },
            )
        }
        Err(err) => state.views.error(&err.into_reply(), Some(&user)),
    }
}

/// A purchase as the history page shows it.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    price: String,
    date: String,
}

async fn purchases(State(state): State<AppState>, session: Session) -> Response {
    let user = session.username;
    let request = PurchasesRequest {
        username: user.clone(),
    };
    match orders::purchases_with(&state.nats, &request, &state.calls.idempotent()).await {
        Ok(reply) => {
            let total: u64 = reply.items.iter().map(|i| u64::from(i.article.price)).sum();
            let rows: Vec<Row> = reply
                .items
                .iter()
                .rev()
                .map(|i| Row {
                    name: i.article.name.clone(),
                    price: price(u64::from(i.article.price)),
                    date: date(&i.purchased_at),
                })
                .collect();
            let total = price(total);
            state.views.page(
                StatusCode::OK,
                "purchases.html",
                context! { user, rows => Value::from(Serde(&rows)), total },
            )
        }
        Err(err) => state.views.error(&err.into_reply(), Some(&user)),
    }
}

async fn logout(State(state): State<AppState>) -> Response {
    let clear = clear_cookie(SESSION_COOKIE, state.secure_cookies);
    with_cookies(Redirect::to("/").into_response(), [clear])
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn activity_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        ACTIVITY_SCRIPT,
    )
        .into_response()
}

async fn status_page(State(state): State<AppState>, session: Option<Session>) -> Response {
    let status = state.status().await;
    let user = session.map(|s| s.username);
    state.views.page(
        StatusCode::OK,
        "status.html",
        context! { user, status => Value::from(Serde(&status)) },
    )
}

async fn status_json(State(state): State<AppState>) -> Response {
    axum::Json(state.status().await).into_response()
}

async fn activity_page(State(state): State<AppState>, session: Option<Session>) -> Response {
    let user = session.map(|s| s.username);
    state
        .views
        .page(StatusCode::OK, "activity.html", context! { user })
}

async fn not_found(State(state): State<AppState>) -> Response {
    state
        .views
        .error(&ErrorReply::not_found("no such page"), None)
}
