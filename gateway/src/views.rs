//! The pages' templates (embedded in the binary) and how values are shown to a person:
//! prices in euros, dates in UTC, messages in French.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use bus_schema::{ErrorCode, ErrorReply, Reason};
use minijinja::{Environment, Value};

const TEMPLATES: [(&str, &str); 10] = [
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("register.html", include_str!("../templates/register.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("bought.html", include_str!("../templates/bought.html")),
    (
        "purchases.html",
        include_str!("../templates/purchases.html"),
    ),
    ("error.html", include_str!("../templates/error.html")),
    ("status.html", include_str!("../templates/status.html")),
    ("activity.html", include_str!("../templates/activity.html")),
];

/// The stylesheet, served at `/static/style.css`.
pub const STYLESHEET: &str = include_str!("../static/style.css");
/// The activity page's only script, served at `/static/activity.js`.
pub const ACTIVITY_SCRIPT: &str = include_str!("../static/activity.js");

/// The compiled templates.
#[derive(Debug)]
pub struct Views {
    env: Environment<'static>,
}

impl Default for Views {
    fn default() -> Self {
        Self::new()
    }
}

impl Views {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|err| panic!("BUG: template {name} does not compile: {err}"));
        }
        Self { env }
    }

    /// `template` rendered with `context`.
    pub fn render(&self, template: &str, context: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(template)?.render(context)
    }

    /// `template` rendered with `context`, as an HTML response with `status`.
    pub fn page(&self, status: StatusCode, template: &str, context: Value) -> Response {
        match self.render(template, context) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(err) => {
                tracing::error!(template, error = %err, "a page could not be rendered");
                (StatusCode::INTERNAL_SERVER_ERROR, "Erreur interne").into_response()
            }
        }
    }

    /// The error page for a failure, with its status.
    pub fn error(&self, err: &ErrorReply, user: Option<&str>) -> Response {
        let status =
            StatusCode::from_u16(err.code.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let title = match err.code {
            ErrorCode::Forbidden => "Accès refusé",
            ErrorCode::NotFound => "Page introuvable",
            ErrorCode::Unavailable => "Service indisponible",
            ErrorCode::TooManyRequests => "Trop de tentatives",
            code if code.is_client_error() => "Requête invalide",
            _ => "Erreur interne",
        };
        self.page(
            status,
            "error.html",
            minijinja::context! { title, message => french(err), user },
        )
    }
}

/// Adds `Set-Cookie` headers to a response.
pub fn with_cookies(mut response: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A price in euro cents as a French reader expects it: `1 234,50 €`.
pub fn price(cents: u64) -> String {
    let euros = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in euros.chars().enumerate() {
        if i > 0 && (euros.len() - i) % 3 == 0 {
            grouped.push('\u{202f}');
        }
        grouped.push(digit);
    }
    format!("{grouped},{:02}\u{a0}€", cents % 100)
}

/// An RFC 3339 time as `23/11/2026 14:05 UTC`; anything else is shown as it is.
pub fn date(rfc3339: &str) -> String {
    let format = time::macros::format_description!("[day]/[month]/[year] [hour]:[minute] UTC");
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_else(|| rfc3339.to_owned())
}

/// A service's failure, said in French when it is one a person often meets, chosen by
/// its reason (never by its English message); a limit comes from the reply.
pub fn french(err: &ErrorReply) -> String {
    let limit = err.limit.map_or_else(String::new, |n| n.to_string());
    let said = match err.reason {
        Reason::TokenExpired => "Votre session a expiré, reconnectez-vous.",
        Reason::BadCredentials => "Nom d'utilisateur ou mot de passe incorrect.",
        Reason::UsernameTaken => "Ce nom d'utilisateur est déjà pris.",
        Reason::UsernameRequired | Reason::PasswordRequired => {
            "Nom d'utilisateur et mot de passe requis."
        }
        Reason::PasswordTooShort => {
            return format!("Le mot de passe doit contenir au moins {limit} caractères.");
        }
        Reason::PasswordTooLong => {
            return format!("Le mot de passe doit contenir au plus {limit} caractères.");
        }
        Reason::UsernameTooLong => {
            return format!("Le nom d'utilisateur doit contenir au plus {limit} caractères.");
        }
        Reason::UsernameInvalid => {
            "Le nom d'utilisateur ne peut contenir que des lettres a-z, des chiffres, « _ » et « - »."
        }
        Reason::TooManyFailedLogins | Reason::TooManyRequests => {
            "Trop de tentatives. Réessayez plus tard."
        }
        Reason::UnknownArticle | Reason::NotFound => "Cette page ou cet article n'existe pas.",
        _ => match err.code {
            ErrorCode::Unauthorized => "Nom d'utilisateur ou mot de passe incorrect.",
            ErrorCode::Unavailable => {
                "Le service est momentanément indisponible. Réessayez dans un instant."
            }
            ErrorCode::Forbidden => "Vous n'avez pas accès à cette page.",
            ErrorCode::Internal => "Une erreur interne est survenue.",
            _ => return err.message.clone(),
        },
    };
    said.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_in_euros_with_a_comma() {
        assert_eq!(price(1000), "10,00\u{a0}€");
        assert_eq!(price(5), "0,05\u{a0}€");
        assert_eq!(price(12_345_678), "123\u{202f}456,78\u{a0}€");
    }

    #[test]
    fn dates_are_day_month_year_in_utc() {
        assert_eq!(date("2026-11-23T14:05:09.123Z"), "23/11/2026 14:05 UTC");
        assert_eq!(date("not a date"), "not a date");
    }

    #[test]
    fn every_template_renders() {
        let views = Views::new();
        let article = minijinja::context! { id => 1, name => "Article 1", price => "10,00 €" };
        let ctx = minijinja::context! {
            user => "victor",
            articles => vec![article.clone()],
            article,
            rows => Vec::<Value>::new(),
            title => "Titre",
            message => "Message",
            csrf => "t",
            key => "k",
            status => minijinja::context! {
                nats => minijinja::context! { healthy => true },
                services => Vec::<Value>::new(),
                slowest => minijinja::context! {
                    requests => vec![minijinja::context! {
                        route => "GET /api/purchases", status => 200, milliseconds => 12.5,
                        at => "2026-12-07T11:00:00Z", request_id => "r1", trace_id => "abc",
                    }],
                    trace_ui => "http://127.0.0.1:16686",
                    tracing => true,
                },
            },
        };
        for (name, _) in TEMPLATES {
            let html = views
                .render(name, ctx.clone())
                .unwrap_or_else(|err| panic!("{name}: {err:#}"));
            assert!(html.contains("</html>"), "{name}");
        }
    }
}
