#!/usr/bin/env bash
# Print the path of a Python 3.10 interpreter, or explain what to install and fail.
# Rasa Open Source 3.6 supports Python 3.8-3.10 only; this project pins 3.10.
set -euo pipefail
candidates=()
[ -n "${PYTHON310:-}" ] && candidates+=("$PYTHON310")
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for p in $(ls -d "$root"/versions/3.10.*/bin/python 2>/dev/null | sort -V -r); do candidates+=("$p"); done
fi
for name in python3.10 python3 python; do
  command -v "$name" >/dev/null 2>&1 && candidates+=("$(command -v "$name")")
done
for p in "${candidates[@]}"; do
  if [ -x "$p" ] && "$p" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
    echo "$p"; exit 0
  fi
done
cat >&2 <<'MSG'
error: Python 3.10 was not found.
  Rasa Open Source 3.6 (this project's engine) runs on Python 3.8-3.10 only, and this project
  pins 3.10. Install it, for example with `pyenv install 3.10`, or point PYTHON310 at a
  python3.10 executable, then run make again.
MSG
exit 1
