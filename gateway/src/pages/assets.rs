//! The stylesheet and the activity feed's script, embedded in the binary.

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

use crate::views::{ACTIVITY_SCRIPT, STYLESHEET};

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

pub async fn activity_script() -> Response {
    asset("text/javascript; charset=utf-8", ACTIVITY_SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
