# Sourced by scripts/dev and scripts/test: a project virtualenv with riskgate installed.
# RISKGATE_VENV overrides where it lives; EXTRAS picks the optional dependency groups.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RISKGATE_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
spec="$root${EXTRAS:+[$EXTRAS]}"
# The install is editable, so only pyproject.toml (dependencies, entry points) can make it
# stale: skip pip when the stamp of the last successful install matches it and these extras.
stamp="$venv/.riskgate-install-${EXTRAS:-base}"
wanted="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
  echo "$wanted" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
