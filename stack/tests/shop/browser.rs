//! A person in a real browser: headless Chromium, driven over WebDriver (chromedriver),
//! registers, logs in, buys with the home page's button, reads the confirmation, opens
//! the purchases, watches the live activity feed and the status page, and logs out. Each page is saved as a screenshot under
//! `target/tmp/screenshots/` for people to look at.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`make deps` installs them). Without
//! them the test fails, unless `SKIP_BROWSER=1` at build time marks it ignored on
//! purpose (see `build.rs`).

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::helpers::Shop;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn start_driver() -> Driver {
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = free_port();
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot start `{bin}` ({err}): install Debian's chromium and chromium-driver \
                 (`make deps`), or set SKIP_BROWSER=1 to skip the browser test on purpose"
            )
        });
    let driver = Driver { child, port };
    let started = std::time::Instant::now();
    while started.elapsed() < testkit::PATIENCE {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return driver;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "chromedriver did not listen on port {port} within {:?}",
        testkit::PATIENCE
    );
}

async fn open_browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic",
                "--window-size=420,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!("a JSON object")
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session opens")
}

/// Saves the current page as `<name>.png` in the screenshot folder.
async fn snap(browser: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn fill(browser: &Client, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(testkit::PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("{css} did not appear: {err}"))
}

async fn body_text(browser: &Client) -> String {
    browser
        .find(Locator::Css("main"))
        .await
        .expect("main")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
#[cfg_attr(
    skip_browser,
    ignore = "SKIP_BROWSER=1 skips the browser test on purpose"
)]
async fn a_person_registers_logs_in_buys_and_logs_out_in_a_real_browser() {
    let shop = Shop::start().await;
    let driver = start_driver();
    let profile = tempfile::tempdir().expect("profile dir");
    let browser = open_browser(&driver, profile.path()).await;

    browser
        .goto(&shop.url("/register"))
        .await
        .expect("open register");
    fill(&browser, "#username", "Camille").await;
    fill(&browser, "#password", "une phrase secrète").await;
    fill(&browser, "#confirm", "une phrase secrète").await;
    snap(&browser, "01-register").await;
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    wait_for(&browser, "p.notice").await;
    assert!(
        body_text(&browser)
            .await
            .contains("Compte « camille » créé")
    );
    snap(&browser, "02-login").await;

    fill(&browser, "#username", "camille").await;
    fill(&browser, "#password", "une phrase secrète").await;
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("log in");
    wait_for(&browser, "#buy-1").await;
    let home = body_text(&browser).await;
    assert!(home.contains("Bonjour camille"), "{home}");
    assert!(home.contains("10,00"), "{home}");
    snap(&browser, "03-home").await;

    browser
        .find(Locator::Css("#buy-1"))
        .await
        .expect("buy button")
        .click()
        .await
        .expect("buy");
    wait_for(&browser, "h1.success").await;
    assert!(
        body_text(&browser)
            .await
            .contains("Bravo camille, achat enregistré pour Article 1 !")
    );
    snap(&browser, "04-bought").await;

    browser
        .goto(&shop.url("/purchases"))
        .await
        .expect("open purchases");
    wait_for(&browser, "#total").await;
    let purchases = body_text(&browser).await;
    assert!(
        purchases.contains("Article 1") && purchases.contains("10,00"),
        "{purchases}"
    );
    snap(&browser, "05-purchases").await;
    assert_eq!(shop.purchase_lines(), 1);

    // The live feed shows a purchase made while the page is open, without a reload.
    browser
        .goto(&shop.url("/activity"))
        .await
        .expect("open activity");
    wait_for(&browser, "#feed").await;
    let token = shop.token("camille", "une phrase secrète").await;
    let bought = reqwest::Client::new()
        .post(shop.url("/api/buy"))
        .bearer_auth(token)
        .json(&json!({ "article_id": 3 }))
        .send()
        .await
        .expect("buy");
    assert_eq!(bought.status(), 201);
    let item = wait_for(&browser, "li.activity.purchase").await;
    let line = item.text().await.expect("text");
    assert!(line.contains("camille a acheté Article 3"), "{line}");
    snap(&browser, "06-activity").await;

    browser
        .goto(&shop.url("/status"))
        .await
        .expect("open status");
    wait_for(&browser, "section.service").await;
    let status = body_text(&browser).await;
    for subject in ["auth.login", "users.verify", "orders.buy"] {
        assert!(status.contains(subject), "{status}");
    }
    snap(&browser, "07-status").await;

    browser
        .find(Locator::LinkText("Déconnexion"))
        .await
        .expect("logout link")
        .click()
        .await
        .expect("log out");
    wait_for(&browser, "#password").await;
    assert_eq!(browser.current_url().await.expect("url").path(), "/");
    browser.goto(&shop.url("/home")).await.expect("open home");
    wait_for(&browser, "#password").await;
    snap(&browser, "08-logged-out").await;

    browser.close().await.expect("browser closes");
}
