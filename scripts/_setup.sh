# Shared set-up for scripts/*: sourced, not run. Installs only what is missing.

cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages, installed once: ensure_debian COMMAND PACKAGE [COMMAND PACKAGE ...]
ensure_debian() {
  local missing=()
  while [ $# -gt 0 ]; do
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
    shift 2
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The project's virtual environment with clickthru installed (editable) and EXTRAS.
ensure_venv() {
  local extras="${1:-}"
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv 2>/dev/null || {
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv .venv
    }
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
}

# The snippet's pinned build tools (esbuild, terser), for the test that rebuilds ct.js.
# Only tests and `npm run build` need them: clickthru itself ships the built file.
ensure_snippet_tools() {
  if [ ! -d snippet/node_modules ] || [ snippet/package-lock.json -nt snippet/node_modules ]; then
    npm ci --prefix snippet --no-audit --no-fund --loglevel=error
  fi
}

# puppeteer-core (pinned in tests/browsers/package-lock.json), which drives Debian's
# firefox-esr over WebDriver BiDi for the browser tests and benchmarks; no browser is fetched.
ensure_browser_drivers() {
  if [ ! -d tests/browsers/node_modules ] || [ tests/browsers/package-lock.json -nt tests/browsers/node_modules ]; then
    PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix tests/browsers --no-audit --no-fund --loglevel=error
  fi
}

# The three browser engines the snippet is tested in: Chromium, Firefox ESR, and WebKitGTK
# (WebKitWebDriver drives MiniBrowser, which has no headless mode: Xvfb).
ensure_browsers() {
  ensure_debian chromium chromium firefox-esr firefox-esr WebKitWebDriver webkit2gtk-driver \
    Xvfb xvfb node nodejs npm npm
  ensure_browser_drivers
}

# The shop's reverse proxies the first-party configurations in deploy/ are tested in.
ensure_proxies() {
  ensure_debian /usr/sbin/nginx nginx caddy caddy openssl openssl
}

# A PostgreSQL for the tests of the shared store: the local server if one answers on
# 127.0.0.1:5432 (trust auth for user postgres), else Debian's, reached by its socket.
ensure_postgres() {
  if [ -n "${CLICKTHRU_TEST_POSTGRES:-}" ]; then return; fi
  if .venv/bin/python -c "import psycopg; psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres', connect_timeout=3).close()" 2>/dev/null; then
    return
  fi
  ensure_debian pg_ctlcluster postgresql
  as_root service postgresql start >/dev/null 2>&1 || true
  as_root su postgres -c "psql -q" >/dev/null <<SQL
DO \$\$ BEGIN CREATE ROLE "$(id -un)" SUPERUSER LOGIN;
EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
SQL
  export CLICKTHRU_TEST_POSTGRES="postgresql:///postgres?host=/var/run/postgresql"
}
