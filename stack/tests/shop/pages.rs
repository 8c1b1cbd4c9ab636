//! The pages with a cookie jar: a person's whole visit, CSRF, sessions, 404 pages and
//! the per-address login throttle.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{Shop, browser, csrf_of, json_of, location, log_in, text};

#[tokio::test]
async fn a_person_registers_logs_in_buys_sees_purchases_and_logs_out() {
    let shop = Shop::start().await;
    let http = browser();

    let (status, html) = text(http.get(shop.url("/register")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&html);

    // A mismatch keeps the typed name.
    let (status, html) = text(
        http.post(shop.url("/register"))
            .form(&[
                ("username", "Alice"),
                ("password", "wonderland"),
                ("confirm", "wonderlanD"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("ne correspondent pas"));
    assert!(html.contains("value=\"Alice\""));
    // A broken rule is said in French.
    let (status, html) = text(
        http.post(shop.url("/register"))
            .form(&[
                ("username", "alice"),
                ("password", "short"),
                ("confirm", "short"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("au moins 8 caractères"), "{html}");

    let response = http
        .post(shop.url("/register"))
        .form(&[
            ("username", "Alice"),
            ("password", "wonderland"),
            ("confirm", "wonderland"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/?registered=alice");
    let (_, html) = text(
        http.get(shop.url("/?registered=alice"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert!(html.contains("Compte « alice » créé"));

    // A taken name.
    let (status, html) = text(
        http.post(shop.url("/register"))
            .form(&[
                ("username", "alice"),
                ("password", "wonderland"),
                ("confirm", "wonderland"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("déjà pris"));

    // A wrong password shows the form again.
    let (status, html) = text(
        http.post(shop.url("/"))
            .form(&[("username", "alice"), ("password", "nope"), ("csrf", &csrf)])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("mot de passe incorrect"));

    let response = http
        .post(shop.url("/"))
        .form(&[
            ("username", "Alice"),
            ("password", "wonderland"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/home");
    let session = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("shop_session="))
        .expect("session cookie")
        .to_owned();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Path=/")
    );
    assert!(session.contains("Max-Age=1800"), "{session}");

    let (status, html) = text(http.get(shop.url("/purchases")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("rien acheté"));

    let (status, html) = text(http.get(shop.url("/home")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Bonjour alice"));
    assert!(html.contains("10,00\u{a0}€") && html.contains("30,00\u{a0}€"));
    assert!(html.contains("action=\"/buy/2\""));

    let (status, html) = text(http.get(shop.url("/buy/2")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Confirmer l'achat"));
    assert_eq!(shop.purchase_lines(), 0, "a GET records nothing");
    let csrf = csrf_of(&html);
    for article in ["2", "1"] {
        let (status, html) = text(
            http.post(shop.url(&format!("/buy/{article}")))
                .form(&[("csrf", csrf.as_str()), ("key", &format!("form-{article}"))])
                .send()
                .await
                .expect("sent"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains(&format!(
                "Bravo alice, achat enregistré pour Article {article} !"
            )),
            "{html}"
        );
    }
    // The same rendered form sent twice is one purchase.
    http.post(shop.url("/buy/1"))
        .form(&[("csrf", csrf.as_str()), ("key", "form-1")])
        .send()
        .await
        .expect("sent");
    assert_eq!(shop.purchase_lines(), 2);

    let (status, html) = text(http.get(shop.url("/purchases")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    let newest = html.find("Article 1").expect("article 1 listed");
    let oldest = html.find("Article 2").expect("article 2 listed");
    assert!(newest < oldest, "newest first");
    assert!(html.contains("30,00\u{a0}€"), "the total");

    let response = http.get(shop.url("/logout")).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    let response = http.get(shop.url("/home")).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused() {
    let shop = Shop::start().await;
    let http = browser();
    let (_, html) = text(http.get(shop.url("/")).send().await.expect("sent")).await;
    let csrf = csrf_of(&html);
    let other = "0".repeat(64);
    for form in [
        vec![("username", "victor"), ("password", "1234")],
        vec![
            ("username", "victor"),
            ("password", "1234"),
            ("csrf", other.as_str()),
        ],
    ] {
        let response = http
            .post(shop.url("/"))
            .form(&form)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let response = http
        .post(shop.url("/register"))
        .form(&[
            ("username", "mallory"),
            ("password", "password1"),
            ("confirm", "password1"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Logged in, a buy without the token records nothing.
    http.post(shop.url("/"))
        .form(&[
            ("username", "victor"),
            ("password", "1234"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent");
    let response = http
        .post(shop.url("/buy/1"))
        .form(&[("key", "x")])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Another browser (no CSRF cookie) replaying the token is refused too.
    let token = shop.token("victor", "1234").await;
    let response = reqwest::Client::new()
        .post(shop.url("/buy/1"))
        .header(header::COOKIE, format!("shop_session={token}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(shop.purchase_lines(), 0);
    let response = http
        .get(shop.url("/users/verify"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_behind_login_redirect_and_an_expired_session_says_so() {
    let shop = Shop::start().await;
    let http = browser();
    for path in ["/home", "/purchases", "/buy/1"] {
        let response = http.get(shop.url(path)).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/");
    }
    // Signed with a published key, expired an hour ago.
    let expired = testkit::StubAuth::start(&shop.nats)
        .await
        .token_with("victor", -7200, -3600);
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(shop.url("/home"))
        .header(header::COOKIE, format!("shop_session={expired}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/?expired=1");
    let cleared = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        cleared.starts_with("shop_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (_, html) = text(
        http.get(shop.url("/?expired=1"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert!(html.contains("session a expiré"));
}

#[tokio::test]
async fn an_unknown_article_is_a_404_page() {
    let shop = Shop::start().await;
    let http = browser();
    let (_, html) = text(http.get(shop.url("/")).send().await.expect("sent")).await;
    let csrf = csrf_of(&html);
    http.post(shop.url("/"))
        .form(&[
            ("username", "victor"),
            ("password", "1234"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent");
    for path in ["/buy/99", "/buy/abc"] {
        let (status, html) = text(http.get(shop.url(path)).send().await.expect("sent")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("Page introuvable"));
    }
    let (status, _) = text(
        http.post(shop.url("/buy/99"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(shop.purchase_lines(), 0);
}

#[tokio::test]
async fn an_address_with_too_many_failed_logins_gets_429_on_the_api_and_the_form() {
    let shop = Shop::start_with(|c| c.max_failed_logins_per_address = 3).await;
    let http = browser();
    // Successes never count: log in fine several times first.
    for _ in 0..4 {
        let response = http
            .post(shop.url("/api/login"))
            .json(&json!({ "username": "victor", "password": "1234" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Three failures on three accounts (each account stays under its own limit).
    for name in ["kilian", "baptiste", "nobody"] {
        let response = http
            .post(shop.url("/api/login"))
            .json(&json!({ "username": name, "password": "wrong" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = http
        .post(shop.url("/api/login"))
        .json(&json!({ "username": "victor", "password": "1234" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry > 0 && retry <= 300);
    let (_, body) = json_of(response).await;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("your address"))
    );

    let response = log_in(&shop, &http, "victor", "1234").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let (_, html) = text(response).await;
    assert!(html.contains("Trop de tentatives"));
}

#[tokio::test]
async fn two_gateways_count_an_addresss_failed_logins_together() {
    let shop = Shop::start_with(|c| c.max_failed_logins_per_address = 3).await;
    let mut config = gateway::Config::for_tests(shop.server.url());
    config.max_failed_logins_per_address = 3;
    let second = testkit::Running::spawn(gateway::build(config).await.expect("gateway builds"));
    let http = browser();
    let login = |url: String, name: &str, password: &str| {
        http.post(url)
            .json(&json!({ "username": name, "password": password }))
            .send()
    };
    // One failure per account, alternating gateways: only the address's limit is in play.
    for (i, name) in ["kilian", "baptiste", "nobody"].into_iter().enumerate() {
        let url = if i % 2 == 0 {
            shop.url("/api/login")
        } else {
            second.url("/api/login")
        };
        let status = login(url, name, "wrong").await.expect("sent").status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Each gateway has counted the other's failures (a bus hop away): two made on the
    // first, one on the second.
    testkit::throttle_shared(&second.url("/metrics"), "login_address", 2).await;
    testkit::throttle_shared(&shop.url("/metrics"), "login_address", 1).await;
    for url in [shop.url("/api/login"), second.url("/api/login")] {
        let status = login(url, "victor", "1234").await.expect("sent").status();
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "three failures in all from this address, whichever gateway saw them"
        );
    }
}

#[tokio::test]
async fn parallel_failures_from_one_address_cannot_pass_its_limit_together() {
    let shop = Shop::start_with(|c| c.max_failed_logins_per_address = 3).await;
    let http = browser();
    // Each on its own account, so that only the address's limit is in play.
    let attempts = (0..20).map(|n| {
        http.post(shop.url("/api/login"))
            .json(&json!({ "username": format!("nobody{n}"), "password": "wrong" }))
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("sent").status())
        .collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(checked, 3, "{statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        17,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_registered_notice_shows_only_a_name_an_account_can_have() {
    let shop = Shop::start().await;
    let http = browser();
    let phishing = "victor » a été bloqué. Appelez le 01 23 45 67 89 «";
    let (status, html) = text(
        http.get(shop.url("/"))
            .query(&[("registered", phishing)])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("Appelez"), "{html}");
    assert!(!html.contains("créé"), "{html}");
    let (_, html) = text(
        http.get(shop.url("/?registered=alice"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert!(html.contains("Compte « alice » créé"), "{html}");
}

#[tokio::test]
async fn another_site_cannot_log_people_out() {
    let shop = Shop::start().await;
    let http = browser();
    let token = shop.token("victor", "1234").await;
    let session = format!("shop_session={token}");
    let response = http
        .get(shop.url("/logout"))
        .header(header::COOKIE, &session)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    // From the shop's own link it works as in the original.
    let response = http
        .get(shop.url("/logout"))
        .header(header::COOKIE, &session)
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cleared = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        cleared.starts_with("shop_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn tokens_and_personal_pages_are_not_kept_in_caches() {
    let shop = Shop::start().await;
    let http = browser();
    let token = shop.token("victor", "1234").await;
    let cache_control = |response: &reqwest::Response| {
        response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let login = json!({ "username": "victor", "password": "1234" });
    for response in [
        http.post(shop.url("/api/login")).json(&login).send(),
        http.post(shop.auth.url("/auth/login")).json(&login).send(),
        http.get(shop.url("/api/purchases"))
            .bearer_auth(&token)
            .send(),
        http.get(shop.url("/home"))
            .header(header::COOKIE, format!("shop_session={token}"))
            .send(),
        http.get(shop.url("/purchases"))
            .header(header::COOKIE, format!("shop_session={token}"))
            .send(),
    ] {
        let response = response.await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK, "{}", response.url());
        assert_eq!(cache_control(&response), "no-store", "{}", response.url());
    }
    let css = http
        .get(shop.url("/static/style.css"))
        .send()
        .await
        .expect("sent");
    assert!(
        cache_control(&css).starts_with("public"),
        "the stylesheet may be kept"
    );
}

#[tokio::test]
async fn a_form_posted_from_another_origin_is_refused_even_with_the_token() {
    let shop = Shop::start().await;
    let http = browser();
    let (_, html) = text(http.get(shop.url("/")).send().await.expect("sent")).await;
    let csrf = csrf_of(&html);
    let form = [
        ("username", "victor"),
        ("password", "1234"),
        ("csrf", csrf.as_str()),
    ];
    let host = shop.gateway.addr().to_string();
    let response = http
        .post(shop.url("/"))
        .header(header::ORIGIN, "https://evil.example")
        .form(&form)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    // From the shop's own page (its origin), the same form logs in.
    let response = http
        .post(shop.url("/"))
        .header(header::ORIGIN, format!("http://{host}"))
        .form(&form)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/home");
}

#[tokio::test]
async fn a_csrf_cookie_the_gateway_did_not_make_is_not_adopted() {
    let shop = Shop::start().await;
    let http = browser();
    // Someone planted a CSRF cookie of their choosing in the browser (a sibling site).
    let planted = "a".repeat(64);
    let cookie = format!("shop_csrf={planted}");
    let response = http
        .post(shop.url("/"))
        .header(header::COOKIE, &cookie)
        .form(&[
            ("username", "victor"),
            ("password", "1234"),
            ("csrf", planted.as_str()),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // A page replaces it with one the gateway made.
    let page = http
        .get(shop.url("/"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("sent");
    let set = page
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(set.starts_with("shop_csrf="), "{set}");
    assert!(!set.contains(&planted), "{set}");
}

#[tokio::test]
async fn a_login_flood_from_one_address_does_not_keep_another_out() {
    // Failures do not stop this flood (a high limit): the cap on logins in flight per
    // address does, and the hashers' bounded queue. Queued, its 400 hashes would hold
    // the hashers for seconds.
    let shop = Shop::start_with(|c| c.max_failed_logins_per_address = 100_000).await;
    let flood = browser();
    // Another person, from another address (the whole of 127/8 is this machine).
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let attempts = (0..400).map(|n| {
        flood
            .post(shop.url("/api/login"))
            .json(&json!({ "username": format!("made-up-{n}"), "password": "guess" }))
            .send()
    });
    let person = async {
        // Sent once the flood is under way.
        tokio::task::yield_now().await;
        other
            .post(shop.url("/api/login"))
            .json(&json!({ "username": "victor", "password": "1234" }))
            .send()
            .await
            .expect("sent")
    };
    let (flooded, person) = tokio::join!(futures_util::future::join_all(attempts), person);
    assert_eq!(person.status(), StatusCode::OK, "the other person gets in");
    let refused_at_once = flooded
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| {
            r.status() == StatusCode::TOO_MANY_REQUESTS
                && r.headers().get(header::RETRY_AFTER).is_some()
        })
        .count();
    assert!(
        refused_at_once > 0,
        "the flood's excess is refused, not queued"
    );
    assert!(
        flooded
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status() != StatusCode::OK)),
        "no made-up account logs in"
    );
}

#[tokio::test]
async fn the_register_form_of_the_original_still_works() {
    let shop = Shop::start().await;
    let http = browser();
    let (_, html) = text(http.get(shop.url("/register")).send().await.expect("sent")).await;
    let csrf = csrf_of(&html);
    // The original's field is `confirm_password`.
    let response = http
        .post(shop.url("/register"))
        .form(&[
            ("username", "zoe"),
            ("password", "password1"),
            ("confirm_password", "password1"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/?registered=zoe");
}
