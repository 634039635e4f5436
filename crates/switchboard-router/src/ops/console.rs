//! The live web console's page: one HTML page, one script and one style sheet embedded in the
//! binary (no CDN, nothing fetched from elsewhere), and `settings.json`, which tells the page
//! which realm and WebSocket to log in to. Everything the page shows and does then goes through
//! the management API over WAMP (`crate::node` serves it), authorized by the roles of the
//! management realm: the page itself is no more trusted than any other client.

use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::config::ConsoleOptions;
use crate::web::{self, HttpBody};

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// The realm the page joins when the path does not name one (`controller.management.realm`'s
/// default).
const DEFAULT_REALM: &str = "crossbar";

/// A `console` path.
#[derive(Debug, Clone)]
pub struct Console {
    realm: String,
    /// The configured WebSocket URL.
    url: Option<String>,
    /// The first WebSocket path of the same transport, which the page connects to on its own
    /// host when no URL is configured.
    websocket_path: Option<String>,
}

impl Console {
    /// The console of a path's options.
    pub fn new(options: &ConsoleOptions) -> Self {
        Self {
            realm: options
                .realm
                .clone()
                .unwrap_or_else(|| DEFAULT_REALM.to_owned()),
            url: options.url.clone(),
            websocket_path: None,
        }
    }

    /// The same console, connecting to `path` on its own host unless it names a URL.
    pub fn with_websocket_path(&self, path: &str) -> Self {
        Self {
            websocket_path: Some(path.to_owned()),
            ..self.clone()
        }
    }

    /// Answers a request for `<path>` + `rel`.
    pub fn serve<B>(&self, req: &Request<B>, rel: &str) -> Response<HttpBody> {
        let (content_type, body) = match rel {
            // Relative links in the page need the trailing slash.
            "" => return web::redirect(&format!("{}/", req.uri().path())),
            "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML),
            "/console.js" => ("text/javascript; charset=utf-8", CONSOLE_JS),
            "/console.css" => ("text/css; charset=utf-8", CONSOLE_CSS),
            "/settings.json" => {
                let settings = serde_json::json!({
                    "realm": self.realm,
                    "url": self.url,
                    "websocket_path": self.websocket_path,
                });
                return web::json(StatusCode::OK, &settings);
            }
            _ => return web::text(StatusCode::NOT_FOUND, "not found\n"),
        };
        let mut response = web::response(StatusCode::OK, content_type, body);
        let headers = response.headers_mut();
        // The page runs only what it ships: no inline script, nothing from elsewhere, and it
        // talks WAMP to WebSockets only.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
                 style-src 'self'; script-src 'self'; frame-ancestors 'none'",
            ),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}
