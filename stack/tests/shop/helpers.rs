//! The whole shop in the test process: a real nats-server, users, auth, orders and the
//! gateway, each on its own port, with a temp data directory; and the helpers of a
//! browser-like client.

use std::path::Path;

use reqwest::{StatusCode, header};
use serde_json::Value;

use tempfile::TempDir;
use testkit::{NatsServer, Running};

pub struct Shop {
    pub gateway: Running,
    pub orders: Running,
    pub users: Running,
    pub auth: Running,
    pub nats: async_nats::Client,
    pub dir: TempDir,
    pub server: NatsServer,
}

impl Shop {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The shop with the gateway's configuration changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut gateway::Config)) -> Self {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let data: &Path = dir.path();
        let users = Running::spawn(
            users::build(users::Config::for_tests(
                server.url(),
                data.join("users.db"),
            ))
            .await
            .expect("users builds"),
        );
        let auth = Running::spawn(
            auth::build(auth::Config::for_tests(server.url()))
                .await
                .expect("auth builds"),
        );
        let orders = Running::spawn(
            orders::build(orders::Config::for_tests(server.url(), data))
                .await
                .expect("orders builds"),
        );
        let mut gateway_config = gateway::Config::for_tests(server.url());
        gateway_config.nats_monitor_url =
            Some(format!("http://127.0.0.1:{}", server.monitor_port()));
        tweak(&mut gateway_config);
        let gateway = Running::spawn(
            gateway::build(gateway_config)
                .await
                .expect("gateway builds"),
        );
        let nats = async_nats::connect(server.url()).await.expect("connect");
        for service in ["users", "auth", "orders"] {
            testkit::answering(&nats, service).await;
        }
        Self {
            gateway,
            orders,
            users,
            auth,
            nats,
            dir,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    /// A token for `username`, from `auth.login` on the bus.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let request = bus_schema::auth::LoginRequest {
            username: username.into(),
            password: password.into(),
        };
        bus_schema::auth::login(&self.nats, &request)
            .await
            .expect("login")
            .access_token
    }

    /// Lines in purchases.json.
    pub fn purchase_lines(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("purchases.json"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

/// A browser-like client: keeps cookies, does not follow redirects (so they are seen).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Logs `username` in through the login form, as a browser would: the form's page for
/// its CSRF token, then the POST. The answer (303 to `/home` when it worked).
pub async fn log_in(
    shop: &Shop,
    http: &reqwest::Client,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let (_, html) = text(http.get(shop.url("/")).send().await.expect("sent")).await;
    let csrf = csrf_of(&html);
    http.post(shop.url("/"))
        .form(&[
            ("username", username),
            ("password", password),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent")
}

/// The CSRF token in a page's forms.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF field in {html}"))
        + marker.len();
    let len = html[start..].find('"').expect("the value ends");
    html[start..start + len].to_owned()
}

pub fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub async fn text(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.expect("body"))
}

pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.expect("json body"))
}
