#!/usr/bin/env bash
# deploy/install.sh — install or upgrade callcore as a systemd service (docs/operations.md).
#
#   sudo deploy/install.sh [--dry-run] [--start] [--prefix /opt/callcore] [--python python3] [--source DIR]
#
# Idempotent: run it again to upgrade. What it does, each step only when needed:
#   1. the system user and group `callcore` (no login, home /var/lib/callcore);
#   2. the source tree copied to PREFIX/src (the previous one kept as PREFIX/src.previous) and installed into the
#      virtualenv PREFIX/venv (pip install; the units point CALLCORE_MIGRATIONS_DIR at PREFIX/src/sql);
#   3. /etc/callcore (root:callcore 0750): callcore.yaml from deploy/callcore.yaml (0640, only if missing), the
#      environment file env (root 0600, only if missing) with a generated ARI password, and an admin API token
#      (its SHA-256 in callcore.yaml, the token in /etc/callcore/admin-token, root 0600);
#   4. the Asterisk side, for you to apply: /etc/callcore/asterisk-ari.conf (root 0600), an ari.conf user with
#      the password as a SHA-512 crypt hash when openssl is available;
#   5. the units callcore.service, callcore-retention.service/.timer in /etc/systemd/system, enabled; and
#      /usr/local/bin/callcore-admin, which runs `callcore …` as the callcore user with the service's environment.
# It never overwrites a config, a secret or a token, and never touches /etc/asterisk.
# --dry-run prints every action without doing anything (no root needed).
set -euo pipefail

PREFIX=/opt/callcore
PYTHON=python3
DRY_RUN=0
START=0
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ETC=/etc/callcore
STATE=/var/lib/callcore
UNIT_DIR=/etc/systemd/system
BIN_DIR=/usr/local/bin
SERVICE_USER=callcore

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --start) START=1 ;;
        --prefix) PREFIX="$2"; shift ;;
        --python) PYTHON="$2"; shift ;;
        --source) SOURCE="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
VENV="$PREFIX/venv"

say() { printf '==> %s\n' "$*"; }
# Run a command, or print it in a dry run. Never pass a secret as an argument: use write_file.
run() {
    if [ "$DRY_RUN" = 1 ]; then printf '[dry-run] %s\n' "$*"; else printf '+ %s\n' "$*"; "$@"; fi
}
# write_file PATH MODE OWNER:GROUP DESCRIPTION < content — atomically, with the mode set before the content lands.
write_file() {
    local path="$1" mode="$2" owner="$3" what="$4"
    if [ "$DRY_RUN" = 1 ]; then
        cat >/dev/null
        printf '[dry-run] write %s (mode %s, %s): %s\n' "$path" "$mode" "$owner" "$what"
        return
    fi
    local tmp
    tmp="$(mktemp "$(dirname "$path")/.install.XXXXXX")"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    cat >"$tmp"
    mv -f "$tmp" "$path"
    printf '+ wrote %s (mode %s, %s): %s\n' "$path" "$mode" "$owner" "$what"
}
random_secret() {  # 32 random bytes, URL-safe base64 (43 characters): fine in env files, URLs and ari.conf
    head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# ---- checks ------------------------------------------------------------------------------------------------
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run it as root (or try --dry-run)" >&2
    exit 1
fi
for f in pyproject.toml src/callcore/cli.py sql deploy/callcore.service deploy/callcore.yaml; do
    [ -e "$SOURCE/$f" ] || { echo "install.sh: $SOURCE does not look like the callcore source tree (no $f)" >&2; exit 1; }
done
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install.sh: callcore needs Python >= 3.11 ($PYTHON: $("$PYTHON" --version 2>&1 || echo missing));" \
         "pass --python" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "install.sh: $PYTHON cannot create virtualenvs (Debian: apt-get install python3-venv)" >&2
    exit 1
fi

# ---- 1. user -----------------------------------------------------------------------------------------------
say "system user $SERVICE_USER"
if id "$SERVICE_USER" >/dev/null 2>&1; then
    echo "    exists"
else
    run useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin \
        --comment "callcore call-center server" "$SERVICE_USER"
fi

# ---- 2. code -----------------------------------------------------------------------------------------------
say "code in $PREFIX (source: $SOURCE)"
run install -d -m 0755 -o root -g root "$PREFIX"
if [ "$DRY_RUN" = 1 ]; then
    printf '[dry-run] copy %s to %s/src (without .git, .venv, .state); keep the old one as src.previous\n' \
        "$SOURCE" "$PREFIX"
else
    rm -rf "$PREFIX/src.new"
    install -d -m 0755 "$PREFIX/src.new"
    tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude=./.state --exclude='*/__pycache__' \
        --exclude=./.pytest_cache --exclude=./.ruff_cache -cf - . | tar -C "$PREFIX/src.new" -xf -
    chown -R root:root "$PREFIX/src.new"
    chmod -R u=rwX,go=rX "$PREFIX/src.new"
    if [ -d "$PREFIX/src" ]; then
        rm -rf "$PREFIX/src.previous"
        mv "$PREFIX/src" "$PREFIX/src.previous"
    fi
    mv "$PREFIX/src.new" "$PREFIX/src"
    echo "+ copied $SOURCE to $PREFIX/src"
fi
if [ -x "$VENV/bin/python" ]; then
    echo "    virtualenv $VENV exists"
else
    run "$PYTHON" -m venv "$VENV"
fi
run "$VENV/bin/python" -m pip install --quiet --upgrade pip
run "$VENV/bin/python" -m pip install --quiet --upgrade "$PREFIX/src"

# ---- 3. config and secrets ---------------------------------------------------------------------------------
say "configuration in $ETC"
run install -d -m 0750 -o root -g "$SERVICE_USER" "$ETC"
if [ -e "$ETC/admin-token" ]; then
    echo "    $ETC/admin-token exists (kept)"
    TOKEN_SHA256=""
else
    TOKEN="cc_$(random_secret)"
    TOKEN_SHA256="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
    write_file "$ETC/admin-token" 0600 root:root "the admin API token (callcore status, curl)" <<<"$TOKEN"
    unset TOKEN
fi
if [ -e "$ETC/callcore.yaml" ]; then
    echo "    $ETC/callcore.yaml exists (kept; compare with $PREFIX/src/deploy/callcore.yaml after upgrades)"
    if [ -n "$TOKEN_SHA256" ]; then
        echo "    NOTE: add the new admin token to api.tokens: - {name: admin-$(date +%Y%m%d), role: admin," \
             "sha256: $TOKEN_SHA256}"
    fi
else
    sed "s/@ADMIN_TOKEN_SHA256@/${TOKEN_SHA256:-0000000000000000000000000000000000000000000000000000000000000000}/" \
        "$SOURCE/deploy/callcore.yaml" | write_file "$ETC/callcore.yaml" 0640 "root:$SERVICE_USER" \
        "the configuration (admin token hash filled in)"
fi
if [ -e "$ETC/env" ]; then
    echo "    $ETC/env exists (kept)"
    ARI_PASSWORD=""
else
    ARI_PASSWORD="$(random_secret)"
    write_file "$ETC/env" 0600 root:root "secrets: a generated CALLCORE_ARI_PASSWORD" <<EOF
# /etc/callcore/env — secrets of callcore.service (root 0600; systemd reads it before dropping privileges).
# Generated by install.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Never commit or log this file.
CALLCORE_ARI_PASSWORD=$ARI_PASSWORD
# Or keep the secret in a file (mode 0600/0400, readable by the callcore user) instead:
#CALLCORE_ARI_PASSWORD_FILE=/etc/callcore/ari-password
# An external PostgreSQL (recommended in production); empty: the embedded one in $STATE/pgdata.
#CALLCORE_DATABASE_URL=postgresql://callcore:PASSWORD@db.example.org:5432/callcore?sslmode=verify-full
#CALLCORE_DATABASE_URL_FILE=/etc/callcore/database-url
EOF
fi

# ---- 4. the Asterisk side (printed, never applied) ---------------------------------------------------------
if [ -n "$ARI_PASSWORD" ]; then
    say "Asterisk: the ARI user for /etc/asterisk/ari.conf"
    if command -v openssl >/dev/null 2>&1; then
        ARI_LINE="password = $(printf '%s' "$ARI_PASSWORD" | openssl passwd -6 -stdin)"$'\n'"password_format = crypt"
    else
        ARI_LINE="password = $ARI_PASSWORD"$'\n'"password_format = plain"
    fi
    write_file "$ETC/asterisk-ari.conf" 0600 root:root "the [callcore] ARI user to add to /etc/asterisk/ari.conf" <<EOF
; Add to /etc/asterisk/ari.conf (generated by callcore's install.sh; the password matches /etc/callcore/env):
[callcore]
type = user
read_only = no
$ARI_LINE
EOF
    unset ARI_PASSWORD ARI_LINE
fi

# ---- 5. systemd units and the admin wrapper ----------------------------------------------------------------
say "systemd units"
for unit in callcore.service callcore-retention.service callcore-retention.timer; do
    src="$SOURCE/deploy/$unit"
    if [ "$PREFIX" != /opt/callcore ]; then
        sed "s#/opt/callcore#$PREFIX#g" "$src" | write_file "$UNIT_DIR/$unit" 0644 root:root "the $unit unit"
    elif [ -e "$UNIT_DIR/$unit" ] && cmp -s "$src" "$UNIT_DIR/$unit"; then
        echo "    $UNIT_DIR/$unit is current"
    else
        run install -m 0644 -o root -g root "$src" "$UNIT_DIR/$unit"
    fi
done
write_file "$BIN_DIR/callcore-admin" 0755 root:root "runs callcore as $SERVICE_USER with the service's environment" <<EOF
#!/bin/sh
# callcore-admin — run a callcore command the way the service runs (written by install.sh):
# as the $SERVICE_USER user (the embedded PostgreSQL's files stay theirs), with the secrets of $ETC/env and the
# config $ETC/callcore.yaml. Examples: callcore-admin status; callcore-admin retention run --dry-run;
# callcore-admin gdpr forget +31612345678 --dry-run; callcore-admin migrate -c $ETC/callcore.yaml
set -eu
[ "\$(id -u)" = 0 ] || { echo "callcore-admin: run it as root (sudo)" >&2; exit 1; }
set -a
[ -r $ETC/env ] && . $ETC/env
set +a
CALLCORE_CONFIG=$ETC/callcore.yaml
CALLCORE_MIGRATIONS_DIR=$PREFIX/src/sql
export CALLCORE_CONFIG CALLCORE_MIGRATIONS_DIR
if [ -z "\${CALLCORE_API_TOKEN:-}" ] && [ -r $ETC/admin-token ]; then
    CALLCORE_API_TOKEN="\$(cat $ETC/admin-token)"
    export CALLCORE_API_TOKEN
fi
cd $STATE
exec runuser -u $SERVICE_USER -- $VENV/bin/callcore "\$@"
EOF
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
    run systemctl enable callcore.service callcore-retention.timer
    if [ "$START" = 1 ]; then
        run systemctl restart callcore.service
        run systemctl start callcore-retention.timer
    fi
else
    echo "    systemd is not running here: enable the units yourself (systemctl enable --now callcore)"
fi

say "done"
cat <<EOF
Next steps (docs/operations.md):
  1. Asterisk: add $ETC/asterisk-ari.conf to /etc/asterisk/ari.conf, check http.conf (bindaddr = 127.0.0.1),
     route your DIDs to Stasis(callcore,inbound,\${EXTEN}), then: asterisk -rx 'module reload res_ari.so'
  2. Edit $ETC/callcore.yaml (flows, queues, agents), then: $VENV/bin/callcore check-config $ETC/callcore.yaml
  3. Start: systemctl start callcore   (upgrade: systemctl restart callcore — migrations run at start)
  4. Check: callcore-admin status; journalctl -u callcore -f
EOF
