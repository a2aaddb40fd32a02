#!/usr/bin/env bash
# The browser of `ciclo ui`'s end-to-end test: Debian's Chromium and its ChromeDriver
# (/usr/bin/chromium, /usr/bin/chromedriver), installed from Debian's packages when missing.
# Needs root (apt-get); .ci/run calls it on a fresh machine. Prints ChromeDriver's version.
set -euo pipefail
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }
fi
chromedriver --version
