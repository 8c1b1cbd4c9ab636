//! Watching the system: the status page and the live activity page.

use axum::{extract::State, http::StatusCode, response::Response};
use minijinja::{Value, context, value::Serde};

use crate::{session::Session, state::AppState};

pub async fn status(State(state): State<AppState>, session: Option<Session>) -> Response {
    let status = state.status().await;
    let user = session.map(|s| s.username);
    state.views.page(
        StatusCode::OK,
        "status.html",
        context! { user, status => Value::from(Serde(&status)) },
    )
}

pub async fn activity(State(state): State<AppState>, session: Option<Session>) -> Response {
    let user = session.map(|s| s.username);
    state
        .views
        .page(StatusCode::OK, "activity.html", context! { user })
}
