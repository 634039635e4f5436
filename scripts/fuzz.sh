#!/usr/bin/env bash
# Fuzzes the decoders, transports, config loader and matcher with cargo-fuzz (libFuzzer, targets in
# fuzz/fuzz_targets/): seeds each target's corpus from the tests and the WAMP test vectors, then
# runs every target for FUZZ_SECONDS seconds (default 20) or, with FUZZ_RUNS, that many executions,
# under AddressSanitizer (FUZZ_SANITIZER=none runs faster: Rust code is memory-safe, ASan mainly
# watches the C code underneath, zlib).
#
#   scripts/fuzz.sh                       # every target, 20 s each (what the test command runs)
#   FUZZ_RUNS=10000000 FUZZ_SANITIZER=none scripts/fuzz.sh   # the long run recorded in the README
#   scripts/fuzz.sh decode_json websocket # some targets only
#
# Needs a nightly toolchain (libFuzzer's instrumentation is a nightly feature). cargo-fuzz is
# installed when missing. Without nightly it says so and exits 0, so the test command goes on.
# A crash stops the run with the input in fuzz/artifacts/<target>/; turn it into a regular test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: no nightly toolchain (rustup toolchain install nightly), which libFuzzer needs"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    if ! cargo install cargo-fuzz --locked --quiet; then
        echo "fuzz: SKIPPED: cargo-fuzz could not be installed"
        exit 0
    fi
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decode_json decode_msgpack decode_cbor rawsocket websocket config_json config_yaml uri_matcher)
fi

# Seed corpora: the WAMP test vectors' messages in each serializer, hand-made transport frames,
# the config corpus of the CLI tests, and a few URI patterns.
python3 - <<'PY'
import hashlib, json, pathlib, struct
root = pathlib.Path("fuzz/corpus")
def seed(target, data):
    d = root / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
vectors = pathlib.Path("crates/switchboard-proto/tests/data/wamp-testsuite")
for f in vectors.rglob("*.json"):
    if f.name == "SCHEMA.json":
        continue
    doc = json.loads(f.read_text())
    samples = doc.get("samples") or [doc]
    for sample in samples:
        for name, variants in (sample.get("serializers") or {}).items():
            for v in variants if isinstance(variants, list) else [variants]:
                if name == "json" and "bytes" in v:
                    seed("decode_json", v["bytes"].encode())
                elif name in ("msgpack", "cbor") and "bytes_hex" in v:
                    seed("decode_" + name, bytes.fromhex(v["bytes_hex"]))
hello = b'[1,"realm1",{"roles":{"caller":{},"subscriber":{}}}]'
call = b'[48,1,{},"com.example.add2",[2,3]]'
frame = lambda kind, p: bytes([kind]) + struct.pack(">I", len(p))[1:] + p
seed("rawsocket", bytes([0xf1, 0, 0]) + frame(0, hello) + frame(1, b"ping") + frame(0, call))
seed("rawsocket", bytes([0xf2, 0, 0]) + frame(0, bytes.fromhex("9201a6726561")))
def ws(op, p, fin=True):
    mask = b"\x01\x02\x03\x04"
    head = bytes([(0x80 if fin else 0) | op])
    head += bytes([0x80 | len(p)]) if len(p) < 126 else bytes([0x80 | 126]) + struct.pack(">H", len(p))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(p))
seed("websocket", bytes([0]) + ws(1, hello) + ws(9, b"p") + ws(1, call) + ws(8, struct.pack(">H", 1000)))
seed("websocket", bytes([0]) + ws(1, call[:10], fin=False) + ws(0, call[10:]))
seed("websocket", bytes([0x80]) + ws(1, hello))
for f in pathlib.Path("crates/switchboard/tests/configs").rglob("*"):
    if f.suffix == ".json":
        seed("config_json", f.read_bytes())
    elif f.suffix in (".yaml", ".yml"):
        seed("config_yaml", f.read_bytes())
seed("config_yaml", b"version: 2\nworkers:\n  - type: router\n    realms: [{name: realm1}]\n")
seed("uri_matcher", b"0com.example.topic\n1com.example.\n2com..topic\ncom.example.topic")
seed("uri_matcher", b"1\n2.\n0a\na")
PY

run_args=(-max_total_time="${FUZZ_SECONDS:-20}")
if [ -n "${FUZZ_RUNS:-}" ]; then
    run_args=(-runs="$FUZZ_RUNS")
fi
cd fuzz
for target in "${targets[@]}"; do
    echo "==== fuzz $target (${run_args[*]}) ===="
    started=$(date +%s)
    log=$(mktemp)
    status=0
    cargo +nightly fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" "$target" "corpus/$target" -- \
        "${run_args[@]}" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|Done [0-9]+ runs" "$log" || true
    if [ "$status" -ne 0 ]; then
        # The panic or sanitizer report, and where libFuzzer put the input.
        grep -E -A8 "panicked|ERROR|SUMMARY|artifact_prefix|Test unit written" "$log" | head -60
    fi
    rm -f "$log"
    echo "fuzz $target: exit $status after $(( $(date +%s) - started )) s"
    [ "$status" -eq 0 ] || exit "$status"
done
