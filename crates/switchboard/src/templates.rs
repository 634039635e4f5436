//! The app templates `switchboard init` writes: their files, embedded in the binary from
//! `templates/`, and how a template becomes a directory (the `appname` substitution).
//!
//! A template is a list of files. In a file's path the word `appname` is replaced by the app's
//! name (so `appname/appname.py` becomes `myapp/myapp.py`), and in a text file's contents every
//! `{{ appname }}` is; both as Crossbar's templates did. Every `hello:*` template gets Autobahn|JS
//! (`templates/vendor/autobahn-browser`) next to its page, so the page loads it from the node
//! itself.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use switchboard_router::config::init_config_json;

/// One template `switchboard init --template NAME` can write.
pub struct Template {
    /// The name given to `--template`.
    pub name: &'static str,
    /// One line for `switchboard init --list`.
    pub summary: &'static str,
    /// What to do after `init`, printed under the written files (`{dir}` is the directory,
    /// `{appname}` the app's name).
    pub next_steps: &'static str,
    files: &'static [(&'static str, Content)],
}

/// Where a template file's bytes come from.
enum Content {
    /// A text file of `templates/`, with `{{ appname }}` substituted.
    Text(&'static str),
    /// A file copied byte for byte.
    Bytes(&'static [u8]),
    /// The default node's config: the built-in configuration plus its web folder, generated so
    /// that `init` and `start` without a config can never drift apart.
    DefaultConfig,
}

macro_rules! text {
    ($path:literal) => {
        Content::Text(include_str!(concat!("../templates/", $path)))
    };
}

/// Autobahn|JS for the pages of the `hello:*` templates (see its README for its provenance).
const AUTOBAHN_JS: Content = Content::Bytes(include_bytes!(
    "../templates/vendor/autobahn-browser/autobahn.min.js"
));
const AUTOBAHN_LICENSE: Content = Content::Bytes(include_bytes!(
    "../templates/vendor/autobahn-browser/LICENSE"
));

/// Every template, `default` first.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "default",
        summary: "a router node: realm1 open to anonymous clients, WebSocket at /ws and RawSocket on 127.0.0.1:8080, web/ served at /; health, metrics and the live console on 127.0.0.1:8090",
        next_steps: "Start it with: switchboard start {dir}\n\
             The live console is at http://127.0.0.1:8090/console/ (loopback only): log in with \
             ticket auth as `admin` or `viewer` (read-only); their tickets are in {dir}/config.json.\n\
             Health: http://127.0.0.1:8090/health/ready  Metrics: http://127.0.0.1:8090/metrics",
        files: &[
            ("config.json", Content::DefaultConfig),
            ("web/index.html", text!("default/web/index.html")),
        ],
    },
    Template {
        name: "hello:python",
        summary: "a Python backend (Autobahn|Python) hosted by the node as a component, called from a web page",
        next_steps: "The backend needs Python 3 with Autobahn|Python; then start it (README.md):\n  \
             python3 -m venv {dir}/.venv && {dir}/.venv/bin/pip install autobahn\n  \
             SWITCHBOARD_PYTHON={dir}/.venv/bin/python switchboard start {dir}\n\
             and open http://127.0.0.1:8080/",
        files: &[
            (
                ".crossbar/config.json",
                text!("hello-python/.crossbar/config.json"),
            ),
            ("README.md", text!("hello-python/README.md")),
            (
                "appname/__init__.py",
                text!("hello-python/appname/__init__.py"),
            ),
            (
                "appname/appname.py",
                text!("hello-python/appname/appname.py"),
            ),
            ("appname/web/index.html", text!("hello/web/index.html")),
            ("appname/web/frontend.js", text!("hello/web/frontend.js")),
            ("appname/web/autobahn.min.js", AUTOBAHN_JS),
            ("appname/web/autobahn.LICENSE", AUTOBAHN_LICENSE),
        ],
    },
    Template {
        name: "hello:nodejs",
        summary: "a Node.js backend (Autobahn|JS) run by the node as a guest worker, called from a web page",
        next_steps: "The backend needs Node.js 22 or later and Autobahn|JS (README.md):\n  \
             cd {dir} && npm install && switchboard start\n\
             and open http://127.0.0.1:8080/",
        files: &[
            (
                ".crossbar/config.json",
                text!("hello-nodejs/.crossbar/config.json"),
            ),
            ("README.md", text!("hello-nodejs/README.md")),
            ("package.json", text!("hello-nodejs/package.json")),
            (
                "appname/appname.js",
                text!("hello-nodejs/appname/appname.js"),
            ),
            ("web/index.html", text!("hello/web/index.html")),
            ("web/frontend.js", text!("hello/web/frontend.js")),
            ("web/autobahn.min.js", AUTOBAHN_JS),
            ("web/autobahn.LICENSE", AUTOBAHN_LICENSE),
        ],
    },
    Template {
        name: "hello:browser",
        summary: "a web page only: backend and frontend both run in the browser",
        next_steps: "Start it with: switchboard start {dir}\nand open http://127.0.0.1:8080/",
        files: &[
            (
                ".crossbar/config.json",
                text!("hello-browser/.crossbar/config.json"),
            ),
            ("README.md", text!("hello-browser/README.md")),
            ("web/index.html", text!("hello-browser/web/index.html")),
            ("web/backend.js", text!("hello-browser/web/backend.js")),
            ("web/frontend.js", text!("hello/web/frontend.js")),
            ("web/autobahn.min.js", AUTOBAHN_JS),
            ("web/autobahn.LICENSE", AUTOBAHN_LICENSE),
        ],
    },
    Template {
        name: "rest",
        summary: "the HTTP bridge: publish, call and webhook paths for curl and other HTTP clients, and a page that shows the events",
        next_steps: "Start it with: switchboard start {dir}\n\
             then open http://127.0.0.1:8080/ and run the curl lines of {dir}/README.md",
        files: &[
            (".crossbar/config.json", text!("rest/.crossbar/config.json")),
            ("README.md", text!("rest/README.md")),
            ("web/index.html", text!("rest/web/index.html")),
            ("web/autobahn.min.js", AUTOBAHN_JS),
            ("web/autobahn.LICENSE", AUTOBAHN_LICENSE),
        ],
    },
    Template {
        name: "postgres",
        summary: "the PostgreSQL bridge: a page that calls SQL functions and shows the rows a trigger publishes",
        next_steps: "It needs PostgreSQL on 127.0.0.1:5432 (README.md):\n  \
             cd {dir} && createdb {appname} && psql -d {appname} -f db/setup.sql && switchboard start\n\
             and open http://127.0.0.1:8080/",
        files: &[
            (
                ".crossbar/config.json",
                text!("postgres/.crossbar/config.json"),
            ),
            ("README.md", text!("postgres/README.md")),
            ("db/setup.sql", text!("postgres/db/setup.sql")),
            // The helper schema, as `switchboard postgres sql` prints it.
            (
                "db/wamp.sql",
                Content::Text(switchboard_router::postgres::HELPER_SCHEMA),
            ),
            ("web/index.html", text!("postgres/web/index.html")),
            ("web/autobahn.min.js", AUTOBAHN_JS),
            ("web/autobahn.LICENSE", AUTOBAHN_LICENSE),
        ],
    },
];

/// The template called `name`, or an error that lists them all.
pub fn find(name: &str) -> anyhow::Result<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        anyhow::anyhow!(
            "there is no template named {name:?}; the templates are: {} (switchboard init --list)",
            names.join(", ")
        )
    })
}

/// An app name: it becomes a directory, a Python module and a file name, so it must be an
/// identifier (a letter or `_`, then letters, digits or `_`).
fn check_appname(appname: &str) -> anyhow::Result<()> {
    let mut chars = appname.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        anyhow::bail!(
            "--appname {appname:?}: expected a name of letters, digits and _ that does not start with a digit (it becomes a directory, a Python module and a file name)"
        )
    }
}

impl Template {
    /// The template's files for `appname`: relative paths and contents.
    pub fn render(&self, appname: &str) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
        check_appname(appname)?;
        Ok(self
            .files
            .iter()
            .map(|(path, content)| {
                let bytes = match content {
                    Content::Text(text) => text.replace("{{ appname }}", appname).into_bytes(),
                    Content::Bytes(bytes) => bytes.to_vec(),
                    Content::DefaultConfig => init_config_json().into_bytes(),
                };
                (PathBuf::from(path.replace("appname", appname)), bytes)
            })
            .collect())
    }

    /// Writes the template for `appname` into `dir` (created if missing). Writes nothing when any
    /// of its files exists already, and says which.
    pub fn write(&self, appname: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let files = self.render(appname)?;
        let existing: Vec<String> = files
            .iter()
            .map(|(path, _)| dir.join(path))
            .filter(|path| path.exists())
            .map(|path| path.display().to_string())
            .collect();
        if !existing.is_empty() {
            anyhow::bail!(
                "not overwriting what is there already: {}",
                existing.join(", ")
            );
        }
        let mut written = Vec::with_capacity(files.len());
        for (path, bytes) in files {
            let path = dir.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            if path.file_name().is_some_and(|n| n == "config.json") {
                // It holds credentials (the management tickets of the default node).
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", path.display()))?;
            }
            written.push(path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_names_its_files_and_contents_after_the_app() {
        for template in TEMPLATES {
            let files = template.render("myapp").expect("render");
            for (path, bytes) in &files {
                assert!(
                    !path.to_string_lossy().contains("appname"),
                    "{}: {}",
                    template.name,
                    path.display()
                );
                if let Ok(text) = std::str::from_utf8(bytes) {
                    assert!(
                        !text.contains("{{ appname }}") && !text.contains("{{appname}}"),
                        "{}: {} keeps a placeholder",
                        template.name,
                        path.display()
                    );
                }
            }
            if template.name == "default" {
                continue;
            }
            // The page loads Autobahn|JS from next to itself.
            let page = files
                .iter()
                .find(|(p, _)| p.ends_with("web/index.html"))
                .expect("a page");
            let dir = page.0.parent().expect("web dir");
            assert!(
                files.iter().any(|(p, _)| p == &dir.join("autobahn.min.js")),
                "{}",
                template.name
            );
            assert!(String::from_utf8_lossy(&page.1).contains("src=\"autobahn.min.js\""));
        }
    }

    #[test]
    fn hello_python_hosts_the_module_it_writes() {
        let files = find("hello:python")
            .expect("template")
            .render("myapp")
            .expect("render");
        let paths: Vec<_> = files.iter().map(|(p, _)| p.clone()).collect();
        assert!(paths.contains(&PathBuf::from("myapp/myapp.py")));
        let config = files
            .iter()
            .find(|(p, _)| p == Path::new(".crossbar/config.json"))
            .expect("config");
        let config: serde_json::Value = serde_json::from_slice(&config.1).expect("JSON");
        assert_eq!(
            config["workers"][0]["components"][0]["classname"],
            "myapp.myapp.AppSession"
        );
        assert_eq!(
            config["workers"][0]["transports"][0]["web"]["paths"]["/"]["directory"],
            "../myapp/web"
        );
    }

    #[test]
    fn appnames_that_cannot_be_a_module_or_a_file_are_refused() {
        let template = find("hello:python").expect("template");
        for bad in ["", "1app", "my-app", "my app", "../x", "a/b", "ä"] {
            let err = template.render(bad).expect_err(bad).to_string();
            assert!(err.contains("--appname"), "{err}");
        }
        assert!(template.render("_my_app2").is_ok());
    }

    #[test]
    fn an_unknown_template_lists_the_known_ones() {
        let err = find("hello:cobol")
            .err()
            .expect("no such template")
            .to_string();
        for t in TEMPLATES {
            assert!(err.contains(t.name), "{err}");
        }
    }
}
