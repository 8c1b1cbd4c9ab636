//! The shop: the catalogue, buying an article, the purchase history.

use axum::{
    Form,
    extract::{Path, Query, State, rejection::FormRejection},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use bus_schema::{
    ErrorReply,
    orders::{self, Article, BuyRequest, PurchasesRequest},
};
use minijinja::{Value, context, value::Serde};
use serde::{Deserialize, Serialize};

use super::page::{HasCsrf, PageError, checked, form_page};
use crate::{
    session::Session,
    state::AppState,
    views::{date, price},
};

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

/// The fields of a buy form.
#[derive(Debug, Default, Deserialize)]
pub struct BuyForm {
    #[serde(default)]
    csrf: String,
    /// Makes a double submit of one rendered form one purchase.
    #[serde(default)]
    key: String,
}

impl HasCsrf for BuyForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A purchase as the history page shows it.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    price: String,
    date: String,
}

pub async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
) -> Result<Response, PageError> {
    let user = session.username;
    let articles: Vec<ArticleView> = catalogue(&state, &user)
        .await?
        .iter()
        .map(ArticleView::from)
        .collect();
    Ok(form_page(
        &state,
        &headers,
        StatusCode::OK,
        "home.html",
        context! { user, articles => Value::from(Serde(&articles)) },
    ))
}

/// The article of a `/buy/<id>` path, or the 404 page.
async fn article(state: &AppState, id: &str, user: &str) -> Result<Article, PageError> {
    let not_found = || state.failed(ErrorReply::not_found("no such article"), Some(user));
    let id: u32 = id.parse().map_err(|_| not_found())?;
    catalogue(state, user)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(not_found)
}

/// The articles on sale, or the error page.
async fn catalogue(state: &AppState, user: &str) -> Result<Vec<Article>, PageError> {
    orders::articles_with(
        &state.nats,
        &orders::ArticlesRequest {},
        &state.calls.idempotent(),
    )
    .await
    .map(|reply| reply.articles)
    .map_err(|err| state.failed(err, Some(user)))
}

pub async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let user = session.username;
    let article = ArticleView::from(&article(&state, &id, &user).await?);
    Ok(form_page(
        &state,
        &headers,
        StatusCode::OK,
        "confirm.html",
        context! { user, article => Value::from(Serde(&article)) },
    ))
}

pub async fn buy(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    Path(id): Path<String>,
    form: Result<Form<BuyForm>, FormRejection>,
) -> Result<Response, PageError> {
    let user = session.username;
    let form = checked(&state, &headers, form)?;
    let article_id: u32 = id
        .parse()
        .map_err(|_| state.failed(ErrorReply::not_found("no such article"), Some(&user)))?;
    let request = BuyRequest {
        username: user.clone(),
        article_id: article_id.into(),
        idempotency_key: Some(form.key).filter(|k| !k.is_empty()),
    };
    let calls = state.buy_calls(&request).bearer(&session.token);
    let reply = orders::buy_with(&state.nats, &request, &calls)
        .await
        .map_err(|err| state.failed(err, Some(&user)))?;
    let article = ArticleView::from(&reply.article);
    Ok(state.views.page(
        StatusCode::OK,
        "bought.html",
        context! { user, article => Value::from(Serde(&article)) },
    ))
}

/// Purchases per page of `/purchases`.
const ROWS_PER_PAGE: u32 = 50;

/// The query of `/purchases`: which page.
#[derive(Debug, Default, Deserialize)]
pub struct PurchasesQuery {
    /// The `next` of the page before; none for the latest purchases.
    cursor: Option<String>,
}

/// The history, newest first, a page at a time, with the count and total of all of it
/// (kept by orders, not summed here) and a link to older purchases.
pub async fn purchases(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PurchasesQuery>,
) -> Result<Response, PageError> {
    let user = session.username;
    let request = PurchasesRequest {
        limit: Some(ROWS_PER_PAGE),
        cursor: query.cursor.clone().filter(|c| !c.is_empty()),
        newest_first: true,
        ..PurchasesRequest::of(&user)
    };
    let calls = state.calls.idempotent().bearer(&session.token);
    let reply = state
        .reads
        .decoded_page(&request, &calls)
        .await
        .map_err(|err| state.failed(err, Some(&user)))?;
    let rows: Vec<Row> = reply
        .items
        .iter()
        .map(|i| Row {
            name: i.article.name.clone(),
            price: price(u64::from(i.article.price)),
            date: date(&i.purchased_at),
        })
        .collect();
    let older = reply
        .next
        .map(|cursor| format!("/purchases?cursor={cursor}"));
    Ok(state.views.page(
        StatusCode::OK,
        "purchases.html",
        context! {
            user,
            rows => Value::from(Serde(&rows)),
            count => reply.count,
            total => price(reply.total),
            older,
            first_page => request.cursor.is_none(),
        },
    ))
}
