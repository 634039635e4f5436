//! Web resources on URL paths (Crossbar's `web` transport and a universal transport's `web`):
//! static files (tower-http's `ServeDir`: MIME types, index.html, Range and conditional requests),
//! directory listings, redirects and a node info page.
//!
//! Every static request is first resolved by [`StaticDir::resolve`], which refuses `..` and
//! anything whose real path (after symlinks) is outside the served directory, before `ServeDir`
//! sees it: directory traversal is impossible by construction, not by trusting one library.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// The body type of every HTTP response the router sends.
pub type HttpBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A complete response with a small body.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<HttpBody> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// What a Crossbar-style dynamic resource (the HTTP bridge, long-poll) answers to any origin: the
/// request's `Origin` (or `*`) is allowed with credentials, the headers a preflight asks for are
/// allowed, and nothing is cached. Taken from the request before it is consumed, applied to the
/// response.
#[derive(Debug, Clone)]
pub struct CorsNoCache {
    origin: HeaderValue,
    asked_headers: Option<HeaderValue>,
}

impl CorsNoCache {
    /// The headers for the answer to a request with `headers`.
    pub fn of(headers: &header::HeaderMap) -> Self {
        Self {
            origin: headers
                .get(header::ORIGIN)
                .filter(|o| o.as_bytes() != b"null")
                .cloned()
                .unwrap_or(HeaderValue::from_static("*")),
            asked_headers: headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned(),
        }
    }

    /// Sets them on `response`.
    pub fn apply(self, response: &mut Response<HttpBody>) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, self.origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store,no-cache,must-revalidate,max-age=0"),
        );
        if let Some(asked) = self.asked_headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        }
    }
}

/// A plain-text response.
pub fn text(status: StatusCode, body: &str) -> Response<HttpBody> {
    response(status, "text/plain; charset=utf-8", body.to_owned())
}

/// A JSON response; nothing in it is cached by the client (health and status answers change).
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response<HttpBody> {
    let mut r = response(status, "application/json", body.to_string());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A `302 Found` to `url` (Twisted's `Redirect`, which Crossbar uses, answers 302 too).
pub fn redirect(url: &str) -> Response<HttpBody> {
    let mut r = text(StatusCode::FOUND, "");
    match HeaderValue::from_str(url) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "invalid redirect URL in the configuration\n",
        ),
    }
}

/// The node info page.
pub fn node_info(realms: &[String]) -> Response<HttpBody> {
    let items: String = realms
        .iter()
        .map(|r| format!("<li>{}</li>", escape_html(r)))
        .collect();
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Switchboard node</title></head>\
         <body><h1>Switchboard {}</h1><p>Realms:</p><ul>{items}</ul></body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    response(StatusCode::OK, "text/html; charset=utf-8", body)
}

/// A fixed JSON document on a web path (the `json` path type), rendered once at start.
#[derive(Debug, Clone)]
pub struct JsonDocument {
    body: Bytes,
    allow_cross_origin: bool,
    discourage_caching: bool,
}

impl JsonDocument {
    /// The document of a `json` path.
    pub fn new(config: &crate::config::JsonPathConfig) -> Self {
        let body = if config.options.prettify {
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
            serde::Serialize::serialize(&config.value, &mut serializer)
                .map(|()| out)
                .unwrap_or_default()
        } else {
            serde_json::to_vec(&config.value).unwrap_or_default()
        };
        Self {
            body: Bytes::from(body),
            allow_cross_origin: config.options.allow_cross_origin,
            discourage_caching: config.options.discourage_caching,
        }
    }

    /// Answers a request: the document to GET (and HEAD), 405 to other methods.
    pub fn serve<B>(&self, req: &Request<B>) -> Response<HttpBody> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let body = if req.method() == Method::HEAD {
            Bytes::new()
        } else {
            self.body.clone()
        };
        let mut r = response(StatusCode::OK, "application/json; charset=utf-8", body);
        let headers = r.headers_mut();
        if self.discourage_caching {
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"),
            );
        }
        if self.allow_cross_origin
            && let Some(origin) = req.headers().get(header::ORIGIN)
        {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        r
    }
}

/// A served directory.
#[derive(Debug, Clone)]
pub struct StaticDir {
    /// The directory, canonicalized once at start-up.
    root: PathBuf,
    listing: bool,
    cache_control: Option<HeaderValue>,
    /// Content types by lower-case file extension (without the dot), overriding the built-in ones.
    mime_types: std::collections::HashMap<String, HeaderValue>,
    serve: ServeDir,
}

/// Characters escaped in the links of a directory listing.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/');

impl StaticDir {
    /// Serves `dir`; fails when it cannot be resolved.
    pub fn new(dir: &Path, options: &crate::config::StaticOptions) -> std::io::Result<Self> {
        let root = dir.canonicalize()?;
        let mime_types = options
            .mime_types
            .iter()
            .filter_map(|(ext, mime)| {
                let value = HeaderValue::from_str(mime).ok()?;
                Some((ext.trim_start_matches('.').to_ascii_lowercase(), value))
            })
            .collect();
        Ok(Self {
            serve: ServeDir::new(&root).append_index_html_on_directories(true),
            root,
            listing: options.enable_directory_listing,
            cache_control: options
                .cache_timeout
                .and_then(|s| HeaderValue::from_str(&format!("max-age={s}")).ok()),
            mime_types,
        })
    }

    /// The real file or directory `rel` (a URL path, percent-encoded) names inside the root, if it
    /// exists and really is inside (after following symlinks).
    pub fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let decoded = percent_decode_str(rel).decode_utf8().ok()?;
        let mut path = self.root.clone();
        for segment in decoded.split('/') {
            match segment {
                "" | "." => {}
                ".." => return None,
                s if s.contains('\\') || s.contains('\0') => return None,
                s => path.push(s),
            }
        }
        let real = path.canonicalize().ok()?;
        real.starts_with(&self.root).then_some(real)
    }

    /// Answers a request for `rel` (the URL path below this resource's mount point).
    pub async fn serve<B>(&self, mut req: Request<B>, rel: &str) -> Response<HttpBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let Some(real) = self.resolve(rel) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        // A directory without its trailing slash: redirect with the full request path, so the
        // mount point is kept and relative links in the page resolve.
        if real.is_dir() && !rel.ends_with('/') {
            return redirect(&format!("{}/", req.uri().path()));
        }
        if real.is_dir() && !real.join("index.html").is_file() {
            if !self.listing {
                return text(StatusCode::NOT_FOUND, "not found\n");
            }
            return self.listing_page(&real, req.uri().path());
        }
        // RFC 9110 §14.2: a server ignores a Range it does not understand (another unit); we also
        // answer several ranges with the whole file instead of 416.
        let range_unusable = req.headers().get(header::RANGE).is_some_and(|r| {
            r.to_str().map_or(true, |r| {
                !r.trim_start().starts_with("bytes=") || r.contains(',')
            })
        });
        if range_unusable {
            req.headers_mut().remove(header::RANGE);
        }
        let origin = req.headers().get(header::ORIGIN).cloned();
        // ServeDir resolves the path again below its root; hand it the mount-relative path only.
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        match format!("{rel}{query}").parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return text(StatusCode::BAD_REQUEST, "bad request\n"),
        }
        let response = match self.serve.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let mut response = response.map(|b| b.map_err(std::io::Error::other).boxed_unsync());
        let success = response.status().is_success();
        let headers = response.headers_mut();
        if let Some(cc) = self.cache_control.as_ref().filter(|_| success) {
            headers.insert(header::CACHE_CONTROL, cc.clone());
        }
        let mime = real
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|e| self.mime_types.get(&e.to_ascii_lowercase()));
        if let Some(mime) = mime.filter(|_| success) {
            headers.insert(header::CONTENT_TYPE, mime.clone());
        }
        // Crossbar's static service answers every origin (pages on other origins load assets from
        // it); keep that for its users.
        if let Some(origin) = origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        response
    }

    fn listing_page(&self, dir: &Path, url_path: &str) -> Response<HttpBody> {
        let mut names: Vec<(String, bool)> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.path().is_dir(),
                    )
                })
                .collect(),
            Err(_) => return text(StatusCode::NOT_FOUND, "not found\n"),
        };
        names.sort();
        let title = escape_html(url_path);
        let mut body = format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\
             <body><h1>Index of {title}</h1><ul>"
        );
        if url_path != "/" {
            body.push_str("<li><a href=\"../\">../</a></li>");
        }
        for (name, is_dir) in names {
            let slash = if is_dir { "/" } else { "" };
            let href = utf8_percent_encode(&name, PATH_SEGMENT);
            body.push_str(&format!(
                "<li><a href=\"{href}{slash}\">{}{slash}</a></li>",
                escape_html(&name)
            ));
        }
        body.push_str("</ul></body></html>\n");
        response(StatusCode::OK, "text/html; charset=utf-8", body)
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_everything_outside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let web = dir.path().join("web");
        std::fs::create_dir_all(web.join("sub")).expect("mkdir");
        std::fs::write(web.join("a.txt"), "a").expect("write");
        std::fs::write(dir.path().join("secret"), "s").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), web.join("link")).expect("symlink");
        let s = StaticDir::new(&web, &Default::default()).expect("static dir");
        assert!(s.resolve("/a.txt").is_some());
        assert!(s.resolve("/sub/../a.txt").is_none());
        assert!(s.resolve("/../secret").is_none());
        assert!(s.resolve("/%2e%2e/secret").is_none());
        assert!(s.resolve("/..%2fsecret").is_none());
        assert!(s.resolve("/link").is_none());
        assert!(s.resolve("/sub/..\\..\\secret").is_none());
    }
}
