#!/usr/bin/env bash
# Runs every test of the project on a fresh machine, installing what the tests need:
#   formatting, clippy (-D warnings), rustdoc (-D warnings), the Rust unit and integration tests
#   (nextest when installed, else cargo test), then the interop suite with Autobahn|Python (PyPI,
#   into .venv) and Autobahn|JS (npm, into tests/interop/js/node_modules) against the built binary,
#   and Autobahn|JS's browser bundle in headless Chromium (Debian's chromium, apt-get installed
#   when missing). The fuzz targets (fuzz/) run 20 s each when a nightly toolchain is present
#   (scripts/fuzz.sh installs cargo-fuzz).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==== %s ====\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "build"
cargo build --workspace --locked --bins

step "Debian packages the Rust tests run: nats-server (the load tool's NATS reference)"
scripts/ensure-package.sh nats-server nats-server

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi

step "doc tests (the examples in the API docs compile and run)"
cargo test --workspace --locked --doc

step "fuzz: every target for 20 s (skipped, saying so, without a nightly toolchain)"
scripts/fuzz.sh

step "load tool against target/debug/switchboard (correctness only)"
scripts/load-check.sh target/debug

step "interop: Autobahn|Python and Autobahn|JS against target/debug/switchboard"
SWITCHBOARD_BIN="$PWD/target/debug/switchboard" tests/interop/run.sh

step "interop: Autobahn|JS (autobahn-browser) in headless Chromium against target/debug/switchboard"
SWITCHBOARD_BIN="$PWD/target/debug/switchboard" tests/interop/browser/run.sh
