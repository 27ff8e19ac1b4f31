#!/bin/sh
# Runs `homecore manifest check --ha` over every core integration manifest of a Home Assistant
# checkout and prints the ones refused, with their problems. Not run by the tests (it needs a
# checkout); compare its output with hassfest's when Home Assistant changes its rules.
#
#   scripts/check-ha-manifests.sh ~/src/home-assistant-core [path/to/homecore]
#
# The second argument is the `homecore` binary (default: built with cargo from this workspace).
# Exit status: 0 when every manifest passes, 1 when some are refused, 2 on a usage error.
set -eu

if [ $# -lt 1 ] || [ ! -d "$1/homeassistant/components" ]; then
    echo "usage: $0 HA_CHECKOUT [HOMECORE_BINARY]" >&2
    exit 2
fi
checkout=$1
if [ $# -ge 2 ]; then
    homecore=$2
else
    cargo build --quiet -p homecore-server --bin homecore
    homecore="${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/debug/homecore"
fi

# One run over every manifest; only the refused ones (and the summary) are printed.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
"$homecore" manifest check --ha "$checkout"/homeassistant/components/*/manifest.json >"$out" 2>&1 ||
    status=$?
grep -v ': ok (' "$out" || echo "every manifest passes"
[ "$status" -eq 0 ]
