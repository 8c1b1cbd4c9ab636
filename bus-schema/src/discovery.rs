//! The subjects of the NATS micro services API (ADR-32) that find running instances:
//! `$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`, for all services, one, or one instance.

/// Where gateway instances share their failed logins per client address (the gateway's
/// NATS user alone may use it; the gateway is no micro service, so it lives here).
pub const GATEWAY_LOGIN_THROTTLE: &str = "gateway.throttle.login";

/// The queue group every service endpoint answers in, so that instances share requests.
pub const QUEUE_GROUP: &str = "q";

/// `$SRV.<verb>`, `$SRV.<verb>.<service>` or `$SRV.<verb>.<service>.<id>`.
fn subject(verb: &str, service: Option<&str>, id: Option<&str>) -> String {
    match (service, id) {
        (Some(service), Some(id)) => format!("$SRV.{verb}.{service}.{id}"),
        (Some(service), None) => format!("$SRV.{verb}.{service}"),
        _ => format!("$SRV.{verb}"),
    }
}

/// Every instance (or every instance of `service`) answers a PING.
pub fn ping(service: Option<&str>) -> String {
    subject("PING", service, None)
}

/// The INFO of one instance: its endpoints.
pub fn info(service: &str, id: &str) -> String {
    subject("INFO", Some(service), Some(id))
}

/// The STATS of one instance: requests, errors and times per endpoint.
pub fn stats(service: &str, id: &str) -> String {
    subject("STATS", Some(service), Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subjects_follow_the_micro_services_api() {
        assert_eq!(ping(None), "$SRV.PING");
        assert_eq!(ping(Some("users")), "$SRV.PING.users");
        assert_eq!(info("users", "abc"), "$SRV.INFO.users.abc");
        assert_eq!(stats("orders", "x1"), "$SRV.STATS.orders.x1");
    }
}
