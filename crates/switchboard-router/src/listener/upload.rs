//! Crossbar's `upload` web path: files uploaded in chunks (Resumable.js's protocol, form field
//! names from the config), each chunk a `multipart/form-data` POST, kept in the temp directory
//! until the file's last chunk arrives, then joined and moved into the upload directory in one
//! rename (a watcher never sees half a file). A GET with the file name and chunk number answers
//! 200 when that chunk is already here and 404 when it is not, so a client resumes an upload where
//! it broke off, also across a node restart (the temp directory is read at start).
//!
//! Progress goes out as WAMP events on the topic the client names (its `on_progress` field),
//! published by the path's session (its `realm` and `role`, authorized like any other), to the
//! session the client names (`session`) or to every subscriber: `{"id", "chunk", "name",
//! "total", "remaining", "status": "started" | "progress" | "finished", "progress",
//! "chunk_extra", "finish_extra"}` as Crossbar sends them.
//!
//! Unlike Crossbar, a file name is one plain name (no `/`, no `..`): a client cannot write outside
//! the directories. A second upload of a name that is in progress with another size or chunk
//! count is refused (409) instead of mixing the two files' chunks.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::BodyStream;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value as Json, json};
use switchboard_client::{Args, PublishOptions};
use switchboard_proto::{Dict, Value};
use tokio_util::task::TaskTracker;

use crate::config::{UploadFormFields, UploadPathConfig};
use crate::embed::SessionOnDemand;
use crate::session::{SessionConfig, TrustedIdentity};
use crate::web::{self, HttpBody};

/// Crossbar's default `max_file_size`: 10 MiB.
const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

/// The largest text field of a chunk's form.
const MAX_TEXT_FIELD: u64 = 64 * 1024;

/// The most chunks one file may have.
const MAX_CHUNKS: u64 = 1 << 20;

/// The temp directory's name inside the upload directory, where no `temp_directory` is given.
pub const DEFAULT_TEMP_DIR: &str = ".switchboard-upload";

/// Marks a file being written (a chunk, a joined file), renamed once complete.
const WRITING: &str = ".writing-";

/// The longest file name accepted.
const MAX_NAME_BYTES: usize = 200;

/// The most unfinished uploads a path keeps.
const MAX_PENDING: usize = 1000;

/// The file in a file's temp folder that holds its size and chunk count.
const TOTALS: &str = "totals";

/// One upload path.
#[derive(Debug)]
pub struct Upload {
    directory: PathBuf,
    temp: PathBuf,
    fields: UploadFormFields,
    max_file_size: u64,
    file_types: Option<Vec<String>>,
    mode: Option<u32>,
    /// Files with chunks here, by name.
    pending: std::sync::Mutex<HashMap<String, Pending>>,
    session: SessionOnDemand,
}

/// A file whose chunks are arriving.
#[derive(Debug, Default)]
struct Pending {
    /// `(total_size, total_chunks)`, once a chunk said them (unknown for uploads found at start).
    totals: Option<(u64, u64)>,
    /// The sizes of the chunks here, by number.
    chunks: BTreeMap<u64, u64>,
    /// Their sum.
    received: u64,
    /// Whether the file is being joined (later chunks are refused meanwhile).
    joining: bool,
}

/// The values of one chunk's form.
struct Chunk {
    file_name: String,
    total_size: u64,
    chunk_number: u64,
    total_chunks: u64,
    content: Bytes,
    topic: Option<String>,
    to_session: Option<u64>,
    chunk_extra: Json,
    finish_extra: Json,
}

/// A refusal: status and text.
struct Refused(StatusCode, String);

fn refused(status: StatusCode, text: impl Into<String>) -> Refused {
    Refused(status, text.into())
}

impl Upload {
    /// The upload path of `config`, with its directories relative to `base`: the upload directory
    /// must exist; the temp directory's chunks are read where it exists. `Err` names the key at
    /// fault and what is wrong.
    pub fn new(
        config: &UploadPathConfig,
        base: &Path,
        name: &str,
    ) -> Result<Self, (&'static str, String)> {
        let directory = base.join(&config.directory);
        if !directory.is_dir() {
            return Err((
                "directory",
                format!(
                    "`{}` is not a directory ({})",
                    config.directory.display(),
                    directory.display()
                ),
            ));
        }
        let (temp, key) = match &config.temp_directory {
            Some(t) => (base.join(t), "temp_directory"),
            None => (directory.join(DEFAULT_TEMP_DIR), "directory"),
        };
        // Made by the first chunk, not here: `check` sets paths up too, and changes nothing.
        let pending = match std::fs::metadata(&temp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            _ => scan_temp(&temp)
                .map_err(|e| (key, format!("cannot read `{}`: {e}", temp.display())))?,
        };
        if !pending.is_empty() {
            tracing::info!(
                uploads = pending.len(),
                "unfinished uploads found: they resume where they broke off"
            );
        }
        Ok(Self {
            directory,
            temp,
            fields: config.form_fields.clone(),
            max_file_size: config
                .options
                .max_file_size
                .unwrap_or(DEFAULT_MAX_FILE_SIZE),
            file_types: config.options.file_types.clone(),
            mode: config
                .options
                .file_permissions
                .as_deref()
                .and_then(crate::config::parse_file_mode),
            pending: std::sync::Mutex::new(pending),
            session: SessionOnDemand::new(TrustedIdentity::new(
                &config.realm,
                format!("http-upload:{name}"),
                &config.role,
            )),
        })
    }

    /// Answers a request to the path: POST a chunk, GET whether a chunk is here.
    pub async fn serve(
        self: &Arc<Self>,
        req: Request<Incoming>,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Response<HttpBody> {
        let outcome = match *req.method() {
            Method::GET | Method::HEAD => self.chunk_status(&req),
            Method::POST => self.receive(req, sessions, tracker).await,
            _ => Err(refused(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )),
        };
        match outcome {
            Ok(response) => response,
            Err(Refused(status, text)) => {
                tracing::debug!(%status, "upload refused: {text}");
                web::text(status, &format!("{text}\n"))
            }
        }
    }

    /// GET: 200 when the chunk the query names is here, else 404.
    fn chunk_status(&self, req: &Request<Incoming>) -> Result<Response<HttpBody>, Refused> {
        let query = query_params(req.uri().query().unwrap_or(""));
        let param = |key: &str, name: &str| {
            query.get(name).cloned().ok_or_else(|| {
                refused(
                    StatusCode::BAD_REQUEST,
                    format!("missing query parameter `{name}` (the `{key}` field)"),
                )
            })
        };
        let file_name = param("file_name", &self.fields.file_name)?;
        let chunk_number = param("chunk_number", &self.fields.chunk_number)?;
        let chunk_number: u64 = chunk_number
            .parse()
            .map_err(|_| refused(StatusCode::BAD_REQUEST, "the chunk number is not a number"))?;
        let here = self
            .pending
            .lock()
            .expect("upload lock")
            .get(&file_name)
            .is_some_and(|p| p.chunks.contains_key(&chunk_number));
        Ok(if here {
            web::text(StatusCode::OK, "chunk of file already uploaded\n")
        } else {
            web::text(StatusCode::NOT_FOUND, "chunk of file not yet uploaded\n")
        })
    }

    /// POST: one chunk.
    async fn receive(
        self: &Arc<Self>,
        req: Request<Incoming>,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Result<Response<HttpBody>, Refused> {
        let chunk = Arc::new(self.read_form(req).await?);
        self.check(&chunk)?;
        let c = &*chunk;
        let file_dir = self.temp.join(&c.file_name);
        let first = {
            let mut pending = self.pending.lock().expect("upload lock");
            if !pending.contains_key(&c.file_name) && pending.len() >= MAX_PENDING {
                return Err(refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many unfinished uploads; try again later",
                ));
            }
            let entry = pending.entry(c.file_name.clone()).or_default();
            let first = entry.chunks.is_empty() && entry.totals.is_none();
            match entry.totals {
                Some(totals) if totals != (c.total_size, c.total_chunks) => {
                    return Err(refused(
                        StatusCode::CONFLICT,
                        "another upload of a file of this name is in progress",
                    ));
                }
                _ => entry.totals = Some((c.total_size, c.total_chunks)),
            }
            if entry.joining {
                return Err(refused(
                    StatusCode::CONFLICT,
                    "this file is complete and being stored",
                ));
            }
            // The chunks of a file never add up to more than the file: one name cannot fill the
            // disk with chunks.
            let others: u64 = entry
                .chunks
                .iter()
                .filter(|(n, _)| **n != c.chunk_number)
                .map(|(_, len)| *len)
                .sum();
            if others.saturating_add(c.content.len() as u64) > c.total_size {
                return Err(refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the chunks would add up to more than the file's size",
                ));
            }
            first
        };
        let publish = |status: &'static str, remaining: u64| {
            self.progress(c, progress_event(c, status, remaining), sessions, tracker)
        };
        let written = async {
            tokio::fs::create_dir_all(&file_dir).await?;
            if first {
                // The file's totals, for an upload resumed after a restart.
                let totals = format!("{} {}", c.total_size, c.total_chunks);
                write_then_rename(&file_dir.join(TOTALS), totals.as_bytes()).await?;
            }
            let chunk_path = file_dir.join(format!("chunk_{}", c.chunk_number));
            write_then_rename(&chunk_path, &c.content).await
        };
        if let Err(e) = written.await {
            tracing::error!(file = %c.file_name, "cannot store an uploaded chunk: {e}");
            let mut pending = self.pending.lock().expect("upload lock");
            if pending
                .get(&c.file_name)
                .is_some_and(|p| p.chunks.is_empty() && !p.joining)
            {
                pending.remove(&c.file_name);
            }
            return Err(refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the chunk could not be stored",
            ));
        }
        if first {
            publish("started", c.total_size).await;
        }
        let (received, complete) = {
            let mut pending = self.pending.lock().expect("upload lock");
            let entry = pending.entry(c.file_name.clone()).or_default();
            entry.chunks.insert(c.chunk_number, c.content.len() as u64);
            entry.received = entry.chunks.values().sum();
            let complete = !entry.joining && entry.chunks.len() as u64 == c.total_chunks;
            if complete {
                entry.joining = true;
            }
            (entry.received, complete)
        };
        if !complete {
            publish("progress", c.total_size.saturating_sub(received)).await;
            return Ok(web::text(StatusCode::OK, ""));
        }
        // Joined on a task of its own: a client that goes away meanwhile cannot leave the file
        // half stored and its name blocked.
        let this = Arc::clone(self);
        let joining = Arc::clone(&chunk);
        let joined = tokio::spawn(async move {
            let file_dir = this.temp.join(&joining.file_name);
            let joined = this.join(&joining, &file_dir).await;
            // The chunks go first, then the entry: a new upload of the name starts clean.
            let _ = tokio::fs::remove_dir_all(&file_dir).await;
            this.pending
                .lock()
                .expect("upload lock")
                .remove(&joining.file_name);
            joined
        })
        .await
        .unwrap_or_else(|e| {
            Err(refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("storing the file failed: {e}"),
            ))
        });
        match joined {
            Ok(()) => {
                publish("finished", 0).await;
                Ok(web::text(StatusCode::OK, ""))
            }
            Err(Refused(status, text)) => {
                tracing::warn!(file = %c.file_name, "upload failed: {text}");
                Err(Refused(status, text))
            }
        }
    }

    /// Reads a chunk's form: the configured fields, the content at most `max_file_size` bytes.
    async fn read_form(&self, req: Request<Incoming>) -> Result<Chunk, Refused> {
        let query = query_params(req.uri().query().unwrap_or(""));
        let boundary = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| multer::parse_boundary(ct).ok())
            .ok_or_else(|| {
                refused(
                    StatusCode::BAD_REQUEST,
                    "expected a multipart/form-data body",
                )
            })?;
        let f = &self.fields;
        let limits = multer::SizeLimit::new()
            .whole_stream(self.max_file_size.saturating_add(1024 * 1024))
            .per_field(MAX_TEXT_FIELD)
            .for_field(f.content.clone(), self.max_file_size);
        let body = BodyStream::new(req.into_body())
            .filter_map(|frame| async { frame.map(|f| f.into_data().ok()).transpose() });
        let mut form = multer::Multipart::with_constraints(
            body,
            boundary,
            multer::Constraints::new().size_limit(limits),
        );
        let mut texts: HashMap<String, String> = HashMap::new();
        let mut content = None;
        loop {
            let field = form.next_field().await.map_err(form_error)?;
            let Some(field) = field else { break };
            let name = field.name().unwrap_or_default().to_owned();
            if name == f.content {
                content = Some(field.bytes().await.map_err(form_error)?);
            } else {
                let text = field.text().await.map_err(form_error)?;
                texts.entry(name).or_insert(text);
            }
        }
        // Resumable.js can send its parameters in the query too.
        let get = |key: &str, name: &str| -> Result<String, Refused> {
            texts
                .get(name)
                .or_else(|| query.get(name))
                .cloned()
                .ok_or_else(|| {
                    refused(
                        StatusCode::BAD_REQUEST,
                        format!("missing form field `{name}` (the `{key}` field)"),
                    )
                })
        };
        let number = |key: &str, name: &str| -> Result<u64, Refused> {
            get(key, name)?.trim().parse().map_err(|_| {
                refused(
                    StatusCode::BAD_REQUEST,
                    format!("form field `{name}` (the `{key}` field) is not a number"),
                )
            })
        };
        let optional = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| texts.get(n).or_else(|| query.get(n)).cloned())
        };
        let extra = |name: &Option<String>, key: &str| -> Result<Json, Refused> {
            match optional(name) {
                None => Ok(json!({})),
                Some(text) => serde_json::from_str(&text).map_err(|e| {
                    refused(
                        StatusCode::BAD_REQUEST,
                        format!("the `{key}` field is not JSON: {e}"),
                    )
                }),
            }
        };
        let to_session = match optional(&f.session) {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => Some(s.trim().parse().map_err(|_| {
                refused(
                    StatusCode::BAD_REQUEST,
                    "the `session` field is not a session id",
                )
            })?),
        };
        Ok(Chunk {
            file_name: get("file_name", &f.file_name)?,
            total_size: number("total_size", &f.total_size)?,
            chunk_number: number("chunk_number", &f.chunk_number)?,
            total_chunks: number("total_chunks", &f.total_chunks)?,
            content: content.ok_or_else(|| {
                refused(
                    StatusCode::BAD_REQUEST,
                    format!("missing form field `{}` (the `content` field)", f.content),
                )
            })?,
            topic: optional(&f.on_progress).filter(|t| !t.is_empty()),
            to_session,
            chunk_extra: extra(&f.chunk_extra, "chunk_extra")?,
            finish_extra: extra(&f.finish_extra, "finish_extra")?,
        })
    }

    /// Crossbar's checks (size 413, file type 415) and the ones it lacks (a plain file name, a
    /// chunk number within the chunk count, a chunk no larger than the file).
    fn check(&self, c: &Chunk) -> Result<(), Refused> {
        if !plain_file_name(&c.file_name) {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "the file name must be one plain name: no `/`, `\\`, `..` or leading `.`",
            ));
        }
        if c.total_size > self.max_file_size {
            return Err(refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Size {} of file to be uploaded exceeds maximum {}",
                    c.total_size, self.max_file_size
                ),
            ));
        }
        if let Some(types) = &self.file_types {
            let extension = Path::new(&c.file_name)
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default();
            if !types.contains(&extension) {
                return Err(refused(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "Type '{extension}' of file to be uploaded is not in allowed types {types:?}"
                    ),
                ));
            }
        }
        if c.total_chunks == 0 || c.total_chunks > MAX_CHUNKS {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                format!("a file has 1 to {MAX_CHUNKS} chunks"),
            ));
        }
        if c.chunk_number == 0 || c.chunk_number > c.total_chunks {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                format!(
                    "chunk number {} is not within 1 to {}",
                    c.chunk_number, c.total_chunks
                ),
            ));
        }
        if c.content.len() as u64 > c.total_size {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "the chunk is larger than the whole file",
            ));
        }
        Ok(())
    }

    /// Joins the chunks of a complete file in the temp directory, checks the size, sets the
    /// permissions and renames it into the upload directory.
    async fn join(&self, c: &Chunk, file_dir: &Path) -> Result<(), Refused> {
        let failed = |what: &str, e: std::io::Error| {
            tracing::error!(file = %c.file_name, "upload: cannot {what}: {e}");
            refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the file could not be stored",
            )
        };
        let joining = file_dir.join(format!("{WRITING}{}", c.file_name));
        let mut out = tokio::fs::File::create(&joining)
            .await
            .map_err(|e| failed("create the joined file", e))?;
        let mut size = 0u64;
        for n in 1..=c.total_chunks {
            let mut part = tokio::fs::File::open(file_dir.join(format!("chunk_{n}")))
                .await
                .map_err(|e| failed("read a chunk", e))?;
            size += tokio::io::copy(&mut part, &mut out)
                .await
                .map_err(|e| failed("join the chunks", e))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(|e| failed("write the joined file", e))?;
        out.sync_all()
            .await
            .map_err(|e| failed("write the joined file", e))?;
        drop(out);
        if size != c.total_size {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                format!(
                    "the chunks add up to {size} bytes, not the {} the upload announced",
                    c.total_size
                ),
            ));
        }
        if let Some(mode) = self.mode {
            use std::os::unix::fs::PermissionsExt as _;
            tokio::fs::set_permissions(&joining, std::fs::Permissions::from_mode(mode))
                .await
                .map_err(|e| failed("set the file's permissions", e))?;
        }
        let target = self.directory.join(&c.file_name);
        match tokio::fs::rename(&joining, &target).await {
            Ok(()) => {}
            // The temp directory is on another file system: copy beside the target, then rename.
            Err(e) if e.raw_os_error() == Some(18) => {
                let beside = self.directory.join(format!(
                    "{WRITING}{:016x}-{}",
                    rand::random::<u64>(),
                    c.file_name
                ));
                let copied = async {
                    tokio::fs::copy(&joining, &beside).await?;
                    tokio::fs::rename(&beside, &target).await
                };
                if let Err(e) = copied.await {
                    let _ = tokio::fs::remove_file(&beside).await;
                    return Err(failed("move the file into the upload directory", e));
                }
            }
            Err(e) => return Err(failed("move the file into the upload directory", e)),
        }
        tracing::info!(file = %c.file_name, bytes = size, "upload finished");
        Ok(())
    }

    /// Publishes a progress event where the client asked for them.
    async fn progress(
        &self,
        c: &Chunk,
        event: Json,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) {
        let Some(topic) = &c.topic else { return };
        let session = match self.session.get(sessions, tracker).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("upload progress: the path's session cannot join: {e}");
                return;
            }
        };
        // Acknowledged, so that a refusal (the role may not publish there) is logged.
        let options = PublishOptions {
            acknowledge: true,
            eligible: c.to_session.map(|id| vec![id]),
            ..PublishOptions::default()
        };
        let event: Value = serde_json::from_value(event).unwrap_or(Value::Null);
        let args = Args::new(vec![event], Dict::new());
        if let Err(e) = session.publish(topic, args, options).await {
            tracing::warn!(%topic, "upload progress event not published: {e}");
        }
    }
}

/// A progress event as Crossbar sends it.
fn progress_event(c: &Chunk, status: &str, remaining: u64) -> Json {
    let progress = if c.total_size == 0 {
        1.0
    } else {
        ((c.total_size - remaining.min(c.total_size)) as f64 / c.total_size as f64 * 1000.0).round()
            / 1000.0
    };
    let mut event = json!({
        "id": c.file_name,
        "chunk": c.chunk_number,
        "name": c.file_name,
        "total": c.total_size,
        "remaining": remaining,
        "status": status,
        "progress": progress,
        "chunk_extra": c.chunk_extra,
    });
    if status == "finished" {
        event["finish_extra"] = c.finish_extra.clone();
    }
    event
}

/// Whether `name` is a file name that stays in its directory.
fn plain_file_name(name: &str) -> bool {
    // Room for the marks of files being written, within the file system's 255 bytes.
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

fn form_error(e: multer::Error) -> Refused {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            refused(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}"))
        }
        other => refused(StatusCode::BAD_REQUEST, format!("bad form: {other}")),
    }
}

/// Writes `data` to a temporary name beside `path`, then renames it to `path`.
async fn write_then_rename(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // A name of its own per write: two requests for one chunk (a client's retry) never write
    // into the same file.
    let writing = path.with_file_name(format!("{WRITING}{:016x}-{name}", rand::random::<u64>()));
    if let Err(e) = tokio::fs::write(&writing, data).await {
        let _ = tokio::fs::remove_file(&writing).await;
        return Err(e);
    }
    tokio::fs::rename(&writing, path).await
}

/// The chunks in the temp directory: one folder per file with `chunk_<n>` files. Half-written
/// files are removed.
fn scan_temp(temp: &Path) -> std::io::Result<HashMap<String, Pending>> {
    let mut pending = HashMap::new();
    for dir in std::fs::read_dir(temp)? {
        let dir = dir?;
        if !dir.file_type()?.is_dir() {
            continue;
        }
        let name = dir.file_name().to_string_lossy().into_owned();
        let mut file = Pending::default();
        for chunk in std::fs::read_dir(dir.path())? {
            let chunk = chunk?;
            let chunk_name = chunk.file_name().to_string_lossy().into_owned();
            if chunk_name.starts_with(WRITING) {
                let _ = std::fs::remove_file(chunk.path());
            } else if chunk_name == TOTALS {
                let text = std::fs::read_to_string(chunk.path())?;
                let mut numbers = text.split_whitespace().map(str::parse::<u64>);
                if let (Some(Ok(size)), Some(Ok(count))) = (numbers.next(), numbers.next()) {
                    file.totals = Some((size, count));
                }
            } else if let Some(n) = chunk_name
                .strip_prefix("chunk_")
                .and_then(|n| n.parse::<u64>().ok())
            {
                file.chunks.insert(n, chunk.metadata()?.len());
            }
        }
        if !file.chunks.is_empty() {
            file.received = file.chunks.values().sum();
            pending.insert(name, file);
        }
    }
    Ok(pending)
}

/// The query's parameters, decoded; the first of a name counts.
fn query_params(query: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        params
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    params
}

#[cfg(test)]
mod tests {
    use super::{WRITING, plain_file_name, scan_temp};

    #[test]
    fn file_names_stay_in_their_directory() {
        for good in ["report.csv", "a b.txt", "data-1.tar.gz", "ünïcode.txt"] {
            assert!(plain_file_name(good), "{good}");
        }
        let long = "x".repeat(256);
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "nul\0.txt",
            long.as_str(),
        ] {
            assert!(!plain_file_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn unfinished_uploads_are_found_at_start_and_half_written_chunks_dropped() {
        let temp = tempfile::tempdir().expect("tempdir");
        let file = temp.path().join("big.bin");
        std::fs::create_dir(&file).expect("mkdir");
        std::fs::write(file.join("chunk_1"), b"12345").expect("write");
        std::fs::write(file.join("chunk_3"), b"12").expect("write");
        std::fs::write(file.join(format!("{WRITING}chunk_2")), b"1").expect("write");
        std::fs::create_dir(temp.path().join("empty")).expect("mkdir");
        let pending = scan_temp(temp.path()).expect("scan");
        assert_eq!(pending.len(), 1);
        let big = &pending["big.bin"];
        assert_eq!(
            big.chunks
                .iter()
                .map(|(n, len)| (*n, *len))
                .collect::<Vec<_>>(),
            [(1, 5), (3, 2)]
        );
        assert!(big.totals.is_none());
        assert!(!file.join(format!("{WRITING}chunk_2")).exists());
    }
}
