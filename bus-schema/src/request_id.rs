//! The id of the request being served, carried across the bus: every typed call sends
//! it in the [`REQUEST_ID_HEADER`](crate::REQUEST_ID_HEADER) header, and a service
//! keeps the id it received in a task-local for the duration of the request, so that
//! its own calls carry it on. (Making and checking ids is the service kit's.)

use std::future::Future;

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being served by this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `fut` as part of request `id`.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_is_current_inside_its_scope_only() {
        assert_eq!(current(), None);
        let inside = scope("r1".into(), async { current() }).await;
        assert_eq!(inside, Some("r1".into()));
    }
}
