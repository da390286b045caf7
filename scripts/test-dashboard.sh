#!/usr/bin/env bash
# The dashboard's browser tests (a step of npm test): installs Debian's Chromium when
# /usr/bin/chromium is missing (as root; nothing downloads a browser), type-checks the
# dashboard, then runs tests/dashboard/browser.mjs with Node's test runner. It starts the
# system itself (scripts/start.sh on spare ports); screenshots go to .local/dashboard-test/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ]; then echo "Chromium is missing: apt-get install chromium (as root)" >&2; exit 1; fi
  echo "installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
npm run --silent typecheck -w dashboard
exec node --test --test-concurrency=1 tests/dashboard/browser.mjs
