#!/usr/bin/env bash
# actionlint also runs shellcheck over each workflow `run:` script when shellcheck is on
# PATH. This installs Debian's package (about 3 MB, seconds) when it is absent and we are
# root, as in CI; otherwise it says so and actionlint runs without it.
set -euo pipefail
command -v shellcheck >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: shellcheck is missing, so actionlint does not check the run: scripts;" \
    "install it with: sudo apt-get install -y shellcheck" >&2
  exit 0
fi
echo "installing shellcheck from Debian's packages"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
