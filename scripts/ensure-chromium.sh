#!/usr/bin/env bash
# The browser tests drive Debian's chromium through Playwright (Playwright cannot download its
# own browser here). Install it when missing and we are allowed to; otherwise explain.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "note: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get);" >&2
echo "      the browser tests will be skipped. Install Debian's 'chromium' package to run them." >&2
