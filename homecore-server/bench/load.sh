#!/usr/bin/env bash
# Load figures for the homecore server (issue 5 §9): wrk, 2 threads, 32 connections, on
# loopback, against the release build started with the example plugins loaded.
#
#   homecore-server/bench/load.sh            # 15 s per run
#   DURATION=30 homecore-server/bench/load.sh
#   BUILD_FLAGS=--no-default-features homecore-server/bench/load.sh   # without Wasmtime
#
# Installs wrk with apt-get when it is missing. Prints requests/s and p99 latency for
# GET /api/states/{id} and POST /api/states/{id}, and the machine's load average.
set -euo pipefail

cd "$(dirname "$0")/../.."
DURATION="${DURATION:-15}"
PORT="${PORT:-18123}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
TOKEN="load-test-token-$(date +%s)-0123456789"
ENTITY="sensor.load_test"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk..." >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else sudo apt-get install -y wrk >/dev/null; fi
fi

# shellcheck disable=SC2086 # BUILD_FLAGS is a list of flags
cargo build --release -p homecore-server --bin homecore ${BUILD_FLAGS:-} >&2
BIN="$TARGET_DIR/release/homecore"

DATA="$(mktemp -d)"
cat >"$DATA/homecore.toml" <<TOML
listen = "127.0.0.1:$PORT"
data_dir = "$DATA/data"
[api]
tokens = ["$TOKEN"]
TOML
RUST_LOG=warn "$BIN" run --config "$DATA/homecore.toml" >"$DATA/server.log" 2>&1 &
SERVER=$!
cleanup() { kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 200); do
  if curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -sf -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
  -d '{"state":"0","attributes":{"unit_of_measurement":"W"}}' "$URL/api/states/$ENTITY" >/dev/null

run() {
  local name="$1"; shift
  local out
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" "$@")"
  local rps p99 non2xx
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  printf '%-32s %12s req/s   p99 %8s   non-2xx: %s\n' "$name" "$rps" "$p99" "${non2xx:-0}"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run "GET /api/states/$ENTITY" "$URL/api/states/$ENTITY"
HOMECORE_POST_PATH="/api/states/$ENTITY" run "POST /api/states/$ENTITY" -s homecore-server/bench/post.lua "$URL"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
