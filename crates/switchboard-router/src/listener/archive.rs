//! Crossbar's `archive` web path: files served from a ZIP archive (a frontend team's build, say),
//! which the node downloads from `origin` when it does not have it and checks against the
//! configured SHA-256 fingerprints. `default_object` answers for the path itself (and paths
//! ending in `/`), `options.default_file` for paths the archive does not have (a single-page
//! application's router), `object_prefix` is a folder of the archive, and `cache` keeps what was
//! read in memory.
//!
//! An archive on disk is opened and checked when the node starts (a fingerprint mismatch or an
//! unreadable archive stops it, naming the key); one still to be downloaded is fetched, checked
//! and opened by the first request (503 until that succeeds), so `check` never downloads.
//! Reading is bounded: no file larger than [`MAX_FILE_BYTES`] decompressed is served, whatever
//! the archive's headers claim, and the cache holds at most [`MAX_CACHE_BYTES`], so a ZIP bomb
//! cannot exhaust memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::config::ArchivePathConfig;
use crate::web::{self, HttpBody};

/// The largest file (decompressed) served from an archive.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The most an archive path keeps in memory with `cache`.
pub const MAX_CACHE_BYTES: u64 = 512 * 1024 * 1024;

/// The largest archive downloaded from `origin`.
const MAX_DOWNLOAD_BYTES: usize = 1024 * 1024 * 1024;

/// Redirects followed when downloading (GitHub's archive URLs redirect once).
const MAX_REDIRECTS: usize = 5;

/// File name endings served with a `Content-Encoding` (Crossbar's gzip ones; its `.bz2` is no
/// HTTP content coding, so such a file goes out as what it is).
const ENCODINGS: [(&str, &str); 2] = [(".gz", "gzip"), (".jgz", "gzip")];

/// The longest a download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// How long after a failed download the next request tries again (503 meanwhile).
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// One archive path.
#[derive(Debug)]
pub struct Archive {
    file: PathBuf,
    origin: Option<String>,
    hashes: Option<Vec<String>>,
    cache: bool,
    default_object: Option<String>,
    object_prefix: Option<String>,
    default_file: Option<String>,
    /// Configured MIME types by file name ending, longest ending first.
    mime_types: Vec<(String, HeaderValue)>,
    opened: tokio::sync::OnceCell<Arc<Opened>>,
    /// Held while the archive is downloaded; when the last download failed.
    loading: tokio::sync::Mutex<Option<Instant>>,
}

/// An open archive.
#[derive(Debug)]
struct Opened {
    zip: Mutex<zip::ZipArchive<File>>,
    /// Decompressed sizes by name (directories left out).
    sizes: HashMap<String, u64>,
    cached: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    files: HashMap<String, Bytes>,
    bytes: u64,
}

impl Archive {
    /// The archive path of `config`: the archive is opened and checked now if it is on disk.
    /// `Err` names the key at fault and what is wrong.
    pub fn open(config: &ArchivePathConfig, base: &Path) -> Result<Self, (&'static str, String)> {
        let file = base.join(&config.archive);
        let mut mime_types: Vec<(String, HeaderValue)> = Vec::new();
        for (ending, mime) in &config.mime_types {
            let value = HeaderValue::from_str(mime)
                .map_err(|_| ("mime_types", format!("{mime:?} is not a MIME type")))?;
            mime_types.push((ending.clone(), value));
        }
        mime_types.sort_by_key(|(ending, _)| std::cmp::Reverse(ending.len()));
        let archive = Self {
            origin: config.download.then(|| config.origin.clone()).flatten(),
            hashes: config
                .hashes
                .as_ref()
                .map(|h| h.iter().map(|h| h.to_ascii_lowercase()).collect()),
            cache: config.cache,
            default_object: config.default_object.clone(),
            object_prefix: config.object_prefix.clone(),
            default_file: config.options.default_file.clone(),
            mime_types,
            opened: tokio::sync::OnceCell::new(),
            loading: tokio::sync::Mutex::new(None),
            file,
        };
        match std::fs::metadata(&archive.file) {
            Ok(m) if m.is_file() => {
                let opened = archive.open_file().map_err(|why| ("archive", why))?;
                archive
                    .opened
                    .set(Arc::new(opened))
                    .expect("a new cell is empty");
            }
            Ok(_) => {
                return Err((
                    "archive",
                    format!("`{}` exists but is not a file", archive.file.display()),
                ));
            }
            Err(_) if archive.origin.is_some() => {
                tracing::debug!(archive = %archive.file.display(), "archive will be downloaded by the first request");
            }
            Err(e) => {
                let why = if config.origin.is_some() {
                    " (`download` is not true, so `origin` is not fetched)"
                } else {
                    ""
                };
                return Err((
                    "archive",
                    format!("cannot open `{}`: {e}{why}", archive.file.display()),
                ));
            }
        }
        Ok(archive)
    }

    /// Opens the archive file, checking its fingerprint first.
    fn open_file(&self) -> Result<Opened, String> {
        let shown = self.file.display();
        if let Some(hashes) = &self.hashes {
            let mut f =
                File::open(&self.file).map_err(|e| format!("cannot open `{shown}`: {e}"))?;
            let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
                if n == 0 {
                    break;
                }
                digest.update(&buf[..n]);
            }
            let actual = hex::encode(digest.finish());
            if !hashes.contains(&actual) {
                return Err(format!(
                    "`{shown}` has the SHA-256 fingerprint {actual}, which is none of `hashes`"
                ));
            }
        }
        let f = File::open(&self.file).map_err(|e| format!("cannot open `{shown}`: {e}"))?;
        let mut zip =
            zip::ZipArchive::new(f).map_err(|e| format!("`{shown}` is not a ZIP archive: {e}"))?;
        let mut sizes = HashMap::new();
        for i in 0..zip.len() {
            let entry = zip
                .by_index_raw(i)
                .map_err(|e| format!("`{shown}` is damaged: {e}"))?;
            if entry.is_dir() {
                continue;
            }
            if let Ok(name) = entry.name() {
                sizes.insert(name.into_owned(), entry.size());
            }
        }
        tracing::debug!(archive = %shown, files = sizes.len(), "archive opened");
        Ok(Opened {
            zip: Mutex::new(zip),
            sizes,
            cached: Mutex::new(Cache::default()),
        })
    }

    /// The open archive, downloading it first where it is not on disk yet: the request that
    /// finds it missing downloads it; requests meanwhile, and for [`RETRY_AFTER`] after a failed
    /// download, are told it is not available.
    async fn opened(self: &Arc<Self>) -> Result<&Arc<Opened>, String> {
        if let Some(opened) = self.opened.get() {
            return Ok(opened);
        }
        let Ok(mut failed) = self.loading.try_lock() else {
            return Err("the archive is being downloaded".into());
        };
        if let Some(opened) = self.opened.get() {
            return Ok(opened);
        }
        if failed.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return Err("the last download failed; trying again soon".into());
        }
        let this = Arc::clone(self);
        let loaded = async move {
            if let Some(origin) = &this.origin
                && tokio::fs::metadata(&this.file).await.is_err()
            {
                tokio::time::timeout(DOWNLOAD_TIMEOUT, this.download(origin))
                    .await
                    .map_err(|_| format!("the download took longer than {DOWNLOAD_TIMEOUT:?}"))??;
            }
            tokio::task::spawn_blocking(move || this.open_file())
                .await
                .map_err(|e| e.to_string())?
        };
        match loaded.await {
            Ok(opened) => {
                *failed = None;
                Ok(self.opened.get_or_init(|| async { Arc::new(opened) }).await)
            }
            Err(why) => {
                *failed = Some(Instant::now());
                Err(why)
            }
        }
    }

    /// Downloads the archive from `origin` next to its place, then moves it there once its
    /// fingerprint matches.
    async fn download(&self, origin: &str) -> Result<(), String> {
        tracing::info!(%origin, archive = %self.file.display(), "downloading archive");
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, Empty<Bytes>>(https);
        let mut url = origin.to_owned();
        let mut redirects = 0;
        let response = loop {
            let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
            let response = client
                .get(uri)
                .await
                .map_err(|e| format!("cannot download {url}: {e}"))?;
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok());
            match location {
                Some(next) if response.status().is_redirection() && redirects < MAX_REDIRECTS => {
                    let joined = url::Url::parse(&url)
                        .and_then(|u| u.join(next))
                        .map_err(|e| format!("bad redirect from {url}: {e}"))?;
                    url = joined.to_string();
                    redirects += 1;
                }
                _ => break response,
            }
        };
        if !response.status().is_success() {
            return Err(format!("downloading {url} answered {}", response.status()));
        }
        // Streamed to a file beside the archive's place and hashed as it comes.
        let partial = self.file.with_extension("download");
        let mut out = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| format!("cannot write `{}`: {e}", partial.display()))?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut body = response.into_body();
        let mut size = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("downloading {url}: {e}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            size += data.len();
            if size > MAX_DOWNLOAD_BYTES {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(format!("{url} is larger than {MAX_DOWNLOAD_BYTES} bytes"));
            }
            digest.update(&data);
            tokio::io::AsyncWriteExt::write_all(&mut out, &data)
                .await
                .map_err(|e| format!("cannot write `{}`: {e}", partial.display()))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(|e| format!("cannot write `{}`: {e}", partial.display()))?;
        drop(out);
        if let Some(hashes) = &self.hashes {
            let actual = hex::encode(digest.finish());
            if !hashes.contains(&actual) {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(format!(
                    "the archive downloaded from {url} has the SHA-256 fingerprint {actual}, \
                     which is none of `hashes`"
                ));
            }
        }
        tokio::fs::rename(&partial, &self.file)
            .await
            .map_err(|e| format!("cannot move the download to `{}`: {e}", self.file.display()))?;
        tracing::info!(archive = %self.file.display(), bytes = size, "archive downloaded");
        Ok(())
    }

    /// The name in the archive for a request path below the archive's own (`rel`).
    fn object_name(&self, rel: &str) -> String {
        let mut name = percent_encoding::percent_decode_str(rel.trim_start_matches('/'))
            .decode_utf8_lossy()
            .into_owned();
        if (name.is_empty() || name.ends_with('/'))
            && let Some(default) = &self.default_object
        {
            name.push_str(default);
        }
        self.prefixed(name)
    }

    fn prefixed(&self, name: String) -> String {
        match self
            .object_prefix
            .as_deref()
            .map(|p| p.trim_end_matches('/'))
        {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}/{name}"),
            _ => name,
        }
    }

    /// Answers a request for `rel` (the path below the archive's).
    pub async fn serve<B>(self: &Arc<Self>, req: &Request<B>, rel: &str) -> Response<HttpBody> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = web::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let opened = match self.opened().await {
            Ok(opened) => opened,
            Err(why) => {
                tracing::error!(archive = %self.file.display(), "{why}");
                return web::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the archive is not available\n",
                );
            }
        };
        let mut name = self.object_name(rel);
        if !opened.sizes.contains_key(&name)
            && let Some(default) = &self.default_file
        {
            name = self.prefixed(default.clone());
        }
        let Some(&size) = opened.sizes.get(&name) else {
            return web::text(StatusCode::NOT_FOUND, "not found\n");
        };
        if size > MAX_FILE_BYTES {
            return web::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the file is too large to serve from an archive\n",
            );
        }
        let body = match self.read(opened, &name, size).await {
            Ok(body) => body,
            Err(why) => {
                tracing::error!(archive = %self.file.display(), file = %name, "{why}");
                return web::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the file cannot be read from the archive\n",
                );
            }
        };
        let mut response = web::response(StatusCode::OK, "application/octet-stream", Bytes::new());
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, self.content_type(&name));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if let Some((_, encoding)) = ENCODINGS.iter().find(|(end, _)| name.ends_with(end)) {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        if req.method() == Method::GET {
            let (parts, _) = response.into_parts();
            let (_, body) = web::response(StatusCode::OK, "", body).into_parts();
            return Response::from_parts(parts, body);
        }
        response
    }

    fn content_type(&self, name: &str) -> HeaderValue {
        if let Some((_, mime)) = self.mime_types.iter().find(|(end, _)| name.ends_with(end)) {
            return mime.clone();
        }
        // A compressed file's type is that of what it holds (`app.js.gz` is JavaScript).
        let inner = ENCODINGS
            .iter()
            .find_map(|(end, _)| name.strip_suffix(end))
            .unwrap_or(name);
        let guess = mime_guess::from_path(inner).first_or_octet_stream();
        HeaderValue::from_str(guess.essence_str())
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    }

    /// The contents of `name` (`size` bytes as the archive says): from the cache, or read and
    /// decompressed on a blocking thread, at most [`MAX_FILE_BYTES`] whatever the archive claims.
    async fn read(&self, opened: &Arc<Opened>, name: &str, size: u64) -> Result<Bytes, String> {
        if let Some(hit) = opened.cached.lock().expect("cache lock").files.get(name) {
            return Ok(hit.clone());
        }
        let (reading, wanted) = (opened.clone(), name.to_owned());
        let read = tokio::task::spawn_blocking(move || -> Result<Bytes, String> {
            let mut zip = reading.zip.lock().expect("archive lock");
            let entry = zip.by_name(&wanted).map_err(|e| e.to_string())?;
            let mut data = Vec::with_capacity(size.min(MAX_FILE_BYTES) as usize);
            entry
                .take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut data)
                .map_err(|e| e.to_string())?;
            if data.len() as u64 > MAX_FILE_BYTES {
                return Err(format!(
                    "decompresses to more than {MAX_FILE_BYTES} bytes, more than its header says"
                ));
            }
            Ok(Bytes::from(data))
        });
        let data = read.await.map_err(|e| e.to_string())??;
        if self.cache {
            let mut cache = opened.cached.lock().expect("cache lock");
            if !cache.files.contains_key(name) && cache.bytes + data.len() as u64 <= MAX_CACHE_BYTES
            {
                cache.bytes += data.len() as u64;
                cache.files.insert(name.to_owned(), data.clone());
            }
        }
        Ok(data)
    }
}
