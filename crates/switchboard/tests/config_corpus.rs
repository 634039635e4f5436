//! The config corpus: `switchboard check` against every node directory under `tests/configs/`.
//!
//! - `tests/configs/valid/<case>/` must pass: exit 0, and stdout says `<file>: configuration is
//!   valid` (for a case with no config file, the built-in default is checked).
//! - `tests/configs/invalid/<case>/` must fail: exit 1, stderr starts with `error: invalid
//!   configuration`, and for every problem in the case's `expected.json` some stderr line contains
//!   the problem's `path`, every one of its `contains` substrings, and `:<line>:` if it has a
//!   `line`. `expected.json` is a list of `{"path": "...", "contains": ["..."], "line": 12}`
//!   (`path` and `line` optional: a syntax error has no path).
//!
//! Every case is copied into a temporary directory first, so nothing the check does (or the
//! harness generates) lands in the repository, and it runs with an unrelated working directory,
//! so relative paths must resolve against the config file's directory. Optional files in a case
//! directory, which the harness reads and does not copy:
//!
//! - `tls-material.json`: `{"keys/server.key": "key", ...}`, files generated with rcgen before the
//!   check (no private key is committed). Kinds: `key` (the server key), `cert` (a certificate for
//!   the server key, signed by the test CA, valid 2020-2100, for `localhost` and `127.0.0.1`), `ca`
//!   (the test CA certificate), `expired-cert` (like `cert`, valid 2000-2001), `key-mismatched` (a
//!   different key).
//! - `env.json`: `{"VAR": "value"}` sets environment variables for the check; `{"VAR": null}`
//!   makes sure VAR is unset.
//!
//! Every case runs and every mismatch is collected; the test fails once at the end listing all of
//! them with the command's full output. `CORPUS_CASE=valid` or `=invalid/port` (a label prefix)
//! or `=tls` (part of a case name) runs only the matching cases; `CORPUS_KEEP=1` keeps (and
//! names) each case's temporary node directory; `--nocapture` also prints the per-case summary of
//! a passing run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `switchboard check` taking longer than this is a failure (it must not start listening).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Files in a case directory that belong to the harness, not to the node.
const HARNESS_FILES: [&str; 3] = ["expected.json", "tls-material.json", "env.json"];

/// Where `check` looks for the config, in order (the contract of `switchboard check DIR`).
const CONFIG_CANDIDATES: [&str; 5] = [
    "config.json",
    "config.yaml",
    "config.yml",
    ".crossbar/config.json",
    ".crossbar/config.yaml",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid,
    Invalid,
}

impl Kind {
    fn dir_name(self) -> &'static str {
        match self {
            Kind::Valid => "valid",
            Kind::Invalid => "invalid",
        }
    }
}

struct Case {
    kind: Kind,
    name: String,
    /// The committed case directory.
    dir: PathBuf,
}

impl Case {
    fn label(&self) -> String {
        format!("{}/{}", self.kind.dir_name(), self.name)
    }
}

/// One expected problem of an invalid case.
#[derive(Debug)]
struct Problem {
    path: Option<String>,
    contains: Vec<String>,
    line: Option<u64>,
}

impl Problem {
    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(p) = &self.path {
            let _ = write!(s, "path `{p}`");
        } else {
            s.push_str("(no path)");
        }
        if let Some(l) = self.line {
            let _ = write!(s, ", line {l} (`:{l}:`)");
        }
        let _ = write!(s, ", containing {:?}", self.contains);
        s
    }

    fn matches(&self, line: &str) -> bool {
        self.path.as_deref().is_none_or(|p| line.contains(p))
            && self.contains.iter().all(|c| line.contains(c.as_str()))
            && self.line.is_none_or(|l| line.contains(&format!(":{l}:")))
    }
}

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("configs")
}

fn collect_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for kind in [Kind::Valid, Kind::Invalid] {
        let dir = corpus_root().join(kind.dir_name());
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .expect("case name")
                .to_string_lossy()
                .into_owned();
            cases.push(Case {
                kind,
                name,
                dir: path,
            });
        }
    }
    cases
}

/// Copies a case directory (recursively, dot-directories included) minus the harness files.
fn copy_node_dir(from: &Path, to: &Path, top: bool) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", from.display()))?;
        let name = entry.file_name();
        if top && HARNESS_FILES.iter().any(|h| name == *h) {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let ty = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", src.display()))?;
        if ty.is_dir() {
            copy_node_dir(&src, &dst, false)?;
        } else if ty.is_file() {
            std::fs::copy(&src, &dst)
                .map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))?;
        } else {
            return Err(format!(
                "{}: only plain files and directories belong in a case",
                src.display()
            ));
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_expected(case: &Case) -> Result<Vec<Problem>, String> {
    let path = case.dir.join("expected.json");
    if !path.is_file() {
        return Err("an invalid case needs an expected.json".into());
    }
    let value = read_json(&path)?;
    let list = value
        .as_array()
        .ok_or("expected.json must be a JSON list of problems")?;
    if list.is_empty() {
        return Err("expected.json lists no problem".into());
    }
    let mut problems = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let obj = item
            .as_object()
            .ok_or(format!("expected.json[{i}] must be an object"))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["path", "contains", "line"].contains(&k.as_str()))
        {
            return Err(format!("expected.json[{i}]: unknown key `{k}`"));
        }
        let path = match obj.get("path") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(format!("expected.json[{i}].path must be a string")),
        };
        let contains = match obj.get("contains") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or(format!(
                        "expected.json[{i}].contains must be a list of strings"
                    ))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("expected.json[{i}].contains must be a list")),
        };
        let line = match obj.get("line") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or(format!(
                "expected.json[{i}].line must be a positive integer"
            ))?),
        };
        if path.is_none() && contains.is_empty() && line.is_none() {
            return Err(format!("expected.json[{i}] expects nothing"));
        }
        problems.push(Problem {
            path,
            contains,
            line,
        });
    }
    Ok(problems)
}

/// `env.json`: variable -> value (a string sets it, null unsets it).
fn read_env(case: &Case) -> Result<Vec<(String, Option<String>)>, String> {
    let path = case.dir.join("env.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let value = read_json(&path)?;
    let obj = value.as_object().ok_or("env.json must be an object")?;
    obj.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), Some(s.clone()))),
            Value::Null => Ok((k.clone(), None)),
            _ => Err(format!("env.json: `{k}` must be a string or null")),
        })
        .collect()
}

/// Generates the files named in `tls-material.json` into `node`.
fn generate_tls_material(case: &Case, node: &Path) -> Result<(), String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        date_time_ymd,
    };

    let path = case.dir.join("tls-material.json");
    if !path.is_file() {
        return Ok(());
    }
    let value = read_json(&path)?;
    let spec = value
        .as_object()
        .ok_or("tls-material.json must be an object")?;
    let e = |what: &str, err: rcgen::Error| format!("generating {what}: {err}");

    let ca_key = KeyPair::generate().map_err(|err| e("the CA key", err))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|err| e("CA", err))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Switchboard config corpus test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = date_time_ymd(2020, 1, 1);
    ca_params.not_after = date_time_ymd(2100, 1, 1);
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|err| e("the CA certificate", err))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(|err| e("the server key", err))?;
    let server_cert = |not_before, not_after| -> Result<String, String> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(|err| e("server certificate", err))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.not_before = not_before;
        params.not_after = not_after;
        params
            .signed_by(&server_key, &issuer)
            .map(|c| c.pem())
            .map_err(|err| e("the server certificate", err))
    };

    for (file, kind) in spec {
        let pem = match kind.as_str() {
            Some("key") => server_key.serialize_pem(),
            Some("cert") => server_cert(date_time_ymd(2020, 1, 1), date_time_ymd(2100, 1, 1))?,
            Some("expired-cert") => {
                server_cert(date_time_ymd(2000, 1, 1), date_time_ymd(2001, 1, 1))?
            }
            Some("ca") => ca_cert.pem(),
            Some("key-mismatched") => KeyPair::generate()
                .map_err(|err| e("the mismatched key", err))?
                .serialize_pem(),
            other => {
                return Err(format!(
                    "tls-material.json: `{file}`: unknown kind {other:?} (key, cert, ca, expired-cert, key-mismatched)"
                ));
            }
        };
        let target = node.join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|err| format!("creating {}: {err}", parent.display()))?;
        }
        std::fs::write(&target, pem)
            .map_err(|err| format!("writing {}: {err}", target.display()))?;
    }
    Ok(())
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

impl Output {
    fn show(&self) -> String {
        let code = match (self.timed_out, self.code) {
            (true, _) => format!("killed after {}s", CHECK_TIMEOUT.as_secs()),
            (false, Some(c)) => format!("exit {c}"),
            (false, None) => "killed by a signal".into(),
        };
        format!(
            "    {code}\n    --- stdout ---\n{}    --- stderr ---\n{}",
            indent(&self.stdout),
            indent(&self.stderr)
        )
    }
}

fn indent(text: &str) -> String {
    let mut s = String::new();
    for line in text.lines() {
        let _ = writeln!(s, "    | {line}");
    }
    s
}

/// Runs the binary with a time limit, reading both pipes to the end.
fn run(args: &[&std::ffi::OsStr], cwd: &Path, env: &[(String, Option<String>)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn().expect("spawning the switchboard binary");
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().expect("waiting for switchboard") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("waiting for the killed switchboard");
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Output {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        timed_out,
    }
}

/// Which config file `check` should find in a node directory (None: the built-in default).
fn config_file_of(node: &Path) -> Option<&'static str> {
    CONFIG_CANDIDATES
        .into_iter()
        .find(|c| node.join(c).is_file())
}

/// Runs one case; `Err` says everything that did not match.
fn run_case(case: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let node = tmp.path().join(&case.name);
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir_all(&cwd).map_err(|e| format!("creating {}: {e}", cwd.display()))?;
    copy_node_dir(&case.dir, &node, true)?;
    generate_tls_material(case, &node)?;
    let env = read_env(case)?;
    let expected = match case.kind {
        Kind::Invalid => Some(read_expected(case)?),
        Kind::Valid if case.dir.join("expected.json").exists() => {
            return Err("a valid case must not have an expected.json".into());
        }
        Kind::Valid => None,
    };
    let out = run(&["check".as_ref(), node.as_os_str()], &cwd, &env);
    let result = check_output(&out, config_file_of(&node), expected.as_deref());
    if std::env::var_os("CORPUS_KEEP").is_some() {
        eprintln!("{}: kept {}", case.label(), tmp.keep().display());
    }
    result
}

/// Compares one `check` run with what the case expects.
fn check_output(
    out: &Output,
    config_file: Option<&str>,
    expected: Option<&[Problem]>,
) -> Result<(), String> {
    let mut why = Vec::new();
    if out.stderr.contains("panicked") {
        why.push("switchboard panicked".to_owned());
    }
    match expected {
        None => {
            if out.code != Some(0) || out.timed_out {
                why.push("expected exit 0 (valid)".to_owned());
            }
            let wanted = match config_file {
                Some(f) => format!("{f}: configuration is valid"),
                None => "valid".to_owned(),
            };
            if !out.stdout.contains(&wanted) {
                why.push(format!("stdout does not contain `{wanted}`"));
            }
        }
        Some(problems) => {
            if out.code != Some(1) || out.timed_out {
                why.push("expected exit 1 (invalid)".to_owned());
            }
            if !out.stderr.contains("error: invalid configuration") {
                why.push("stderr does not contain `error: invalid configuration`".to_owned());
            }
            for p in problems {
                if !out.stderr.lines().any(|l| p.matches(l)) {
                    why.push(format!("no stderr line with {}", p.describe()));
                }
            }
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        let mut s = String::new();
        for w in &why {
            let _ = writeln!(s, "  - {w}");
        }
        s.push_str(&out.show());
        Err(s)
    }
}

/// `switchboard init` output (not committed, so it follows the current default) must check.
fn run_init_case() -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let node = tmp.path().join("node");
    let init = run(&["init".as_ref(), node.as_os_str()], tmp.path(), &[]);
    if init.code != Some(0) {
        return Err(format!("  - `switchboard init` failed\n{}", init.show()));
    }
    let out = run(&["check".as_ref(), node.as_os_str()], tmp.path(), &[]);
    check_output(&out, config_file_of(&node), None)
}

#[test]
fn every_node_config_in_the_corpus_checks_as_expected() {
    let filter = std::env::var("CORPUS_CASE").ok();
    // `valid`, `invalid/port` (label prefixes) or `tls` (part of a case name).
    let selected = |label: &str| {
        filter.as_deref().is_none_or(|f| {
            label.starts_with(f)
                || label
                    .split_once('/')
                    .is_some_and(|(_, name)| name.contains(f))
        })
    };

    let mut results: BTreeMap<String, Result<(), String>> = BTreeMap::new();
    let cases = collect_cases();
    assert!(
        cases.iter().any(|c| c.kind == Kind::Valid)
            && cases.iter().any(|c| c.kind == Kind::Invalid),
        "no cases under {}",
        corpus_root().display()
    );
    for case in &cases {
        let label = case.label();
        if selected(&label) {
            results.insert(label, run_case(case));
        }
    }
    let init_label = "valid/(generated by `switchboard init`)".to_owned();
    if selected(&init_label) {
        results.insert(init_label, run_init_case());
    }
    assert!(
        !results.is_empty(),
        "CORPUS_CASE={filter:?} matches no case"
    );

    let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    let mut summary = String::new();
    for (label, result) in &results {
        let mark = if result.is_ok() { "pass" } else { "FAIL" };
        let _ = writeln!(summary, "  {mark}  {label}");
    }
    eprintln!(
        "config corpus: {} of {} cases pass\n{summary}",
        results.len() - failed.len(),
        results.len()
    );
    if !failed.is_empty() {
        let mut report = String::new();
        for (label, result) in &failed {
            if let Err(why) = result {
                let _ = writeln!(report, "\n{label}:\n{why}");
            }
        }
        panic!(
            "{} of {} config corpus cases failed:\n{report}\nsummary:\n{summary}",
            failed.len(),
            results.len()
        );
    }
}
