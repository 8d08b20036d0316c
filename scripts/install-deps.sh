#!/usr/bin/env bash
# Installs the Debian (and npm) packages the build, the service and its tests
# need, only those missing. Idempotent; uses sudo only when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

want=(build-essential cmake pkg-config clang llvm libclang-rt-14-dev clang-format
      libmicrohttpd-dev libjansson-dev libsqlite3-dev sqlite3 libpq-dev libcurl4-openssl-dev
      libssl-dev openssl dpkg-dev libcmocka-dev python3 python3-jsonschema python3-yaml
      postgresql postgresql-client awscli nodejs npm yamllint util-linux
      procps curl zip unzip binutils librocksdb-dev gcovr gcc-aarch64-linux-gnu qemu-user
      librabbitmq-dev rabbitmq-server amqp-tools zlib1g-dev libzstd-dev faketime)
if [ "${1:-}" = "--print" ]; then printf '%s\n' "${want[@]}"; exit 0; fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from elsewhere than Debian (a preinstalled toolchain): accept them.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages pinned by package-lock.json (dynalite for the DynamoDB tests,
# fauxqs for the SQS/SNS event tests, the OpenFeature SDK and its OFREP provider
# for the config-service tests, s3rver: a local S3 for audit export to s3://).
if [ -f package-lock.json ] && { [ ! -d node_modules/dynalite ] || [ ! -d node_modules/fauxqs ] ||
  [ ! -d node_modules/@openfeature/ofrep-provider ] || [ ! -d node_modules/s3rver ]; }; then
  echo "install-deps: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
