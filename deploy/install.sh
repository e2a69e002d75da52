#!/usr/bin/env bash
# deploy/install.sh — install or upgrade callcore as a systemd service (docs/operations.md).
#
#   sudo deploy/install.sh [--dry-run] [--start] [--prefix /opt/callcore] [--python python3] [--source DIR]
#                          [--asterisk-config] [--config-only [--destdir DIR]]
#
# Idempotent: run it again to upgrade. What it does, each step only when needed:
#   1. the system user and group `callcore` (no login, home /var/lib/callcore);
#   2. the source tree copied to PREFIX/src (the previous one kept as PREFIX/src.previous) and installed into the
#      virtualenv PREFIX/venv (pip install; the units point CALLCORE_MIGRATIONS_DIR at PREFIX/src/sql);
#   3. /etc/callcore (root:callcore 0750): callcore.yaml from deploy/callcore.yaml (0640, only if missing), a
#      generated ARI password in ari-password (callcore 0600, only if missing), the environment file env (root
#      0600, only if missing) pointing CALLCORE_ARI_PASSWORD_FILE at it, and an admin API token (its SHA-256 in
#      callcore.yaml, the token in /etc/callcore/admin-token, root 0600);
#   4. the Asterisk side: /etc/callcore/asterisk-ari.conf (root 0600), the ari.conf user for a new password, as a
#      SHA-512 crypt hash when openssl is available; with --asterisk-config also callcore's Asterisk configuration
#      (asterisk/ of the source) in /etc/asterisk: see "--asterisk-config" below;
#   5. the units callcore.service, callcore-retention.service/.timer in /etc/systemd/system, enabled; and
#      /usr/local/bin/callcore-admin, which runs `callcore …` as the callcore user with the service's environment.
# It never overwrites a config, a secret or a token, and never prints a secret. Without --asterisk-config it never
# touches /etc/asterisk.
#
# --asterisk-config: for an Asterisk that serves callcore alone. The first time, whatever /etc/asterisk holds
#   (Debian's samples) moves to /etc/asterisk.dist and callcore's files replace it (root:asterisk 0640). ari.conf
#   gets the crypt hash of the ARI password, pjsip_auth.conf a long random password per agent phone; both are
#   written once and never again. Later runs add missing files, leave identical ones, and put a newer shipped
#   version of a file you changed next to it as FILE.callcore-new (never over it). The shipped files accept SIP
#   from 127.0.0.1 only: list your carrier's and phones' addresses in acl.conf (docs/security.md).
# --config-only: steps 3 and 4 only (no user, code, units). --destdir DIR (with --config-only): write under DIR
#   instead of /, set no owners (a package build sets them), need no root: for images, packages and tests.
# --dry-run prints every action without doing anything (no root needed).
set -euo pipefail

PREFIX=/opt/callcore
PYTHON=python3
DRY_RUN=0
START=0
ASTERISK_CONFIG=0
CONFIG_ONLY=0
DESTDIR=""
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ETC=/etc/callcore
STATE=/var/lib/callcore
UNIT_DIR=/etc/systemd/system
BIN_DIR=/usr/local/bin
SERVICE_USER=callcore
AST_ETC=/etc/asterisk
AST_GROUP=asterisk

usage() { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --start) START=1 ;;
        --prefix) PREFIX="$2"; shift ;;
        --python) PYTHON="$2"; shift ;;
        --source) SOURCE="$2"; shift ;;
        --asterisk-config) ASTERISK_CONFIG=1 ;;
        --config-only) CONFIG_ONLY=1 ;;
        --destdir) DESTDIR="${2%/}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
VENV="$PREFIX/venv"
if [ -n "$DESTDIR" ]; then
    [ "$CONFIG_ONLY" = 1 ] || { echo "install.sh: --destdir needs --config-only" >&2; exit 2; }
    case "$DESTDIR" in /*) ;; *) echo "install.sh: --destdir needs an absolute path" >&2; exit 2 ;; esac
fi

say() { printf '==> %s\n' "$*"; }
# Run a command, or print it in a dry run. Never pass a secret as an argument: use write_file.
run() {
    if [ "$DRY_RUN" = 1 ]; then printf '[dry-run] %s\n' "$*"; else printf '+ %s\n' "$*"; "$@"; fi
}
# Paths below are the installed system's (/etc/callcore/...); under --destdir the files land in DESTDIR/etc/....
at() { printf '%s%s' "$DESTDIR" "$1"; }
exists() { [ -e "$DESTDIR$1" ]; }
# write_file PATH MODE OWNER:GROUP DESCRIPTION < content — atomically, with the mode set before the content lands.
write_file() {
    local path="$DESTDIR$1" mode="$2" owner="$3" what="$4"
    if [ "$DRY_RUN" = 1 ]; then
        cat >/dev/null
        printf '[dry-run] write %s (mode %s, %s): %s\n' "$path" "$mode" "$owner" "$what"
        return
    fi
    local tmp
    tmp="$(mktemp "$(dirname "$path")/.install.XXXXXX")"
    chmod "$mode" "$tmp"
    if [ -z "$DESTDIR" ]; then chown "$owner" "$tmp"; else owner="$owner not set under --destdir"; fi
    cat >"$tmp"
    mv -f "$tmp" "$path"
    printf '+ wrote %s (mode %s, %s): %s\n' "$path" "$mode" "$owner" "$what"
}
# ensure_dir PATH MODE OWNER GROUP — create the directory if missing (owner and group only outside --destdir).
ensure_dir() {
    if [ -n "$DESTDIR" ]; then run install -d -m "$2" "$DESTDIR$1"; else run install -d -m "$2" -o "$3" -g "$4" "$1"; fi
}
random_secret() {  # 32 random bytes, URL-safe base64 (43 characters): fine in env files, URLs and ari.conf
    head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}
# The ARI password callcore uses (stdout, for a pipe: never into an argument, a log or the terminal).
current_ari_password() {
    if exists "$ETC/ari-password"; then
        head -n 1 "$(at "$ETC/ari-password")"
    elif exists "$ETC/env"; then
        sed -n 's/^CALLCORE_ARI_PASSWORD=//p' "$(at "$ETC/env")" | head -n 1
    fi
}
# ari.conf's lines for the password read from stdin: a SHA-512 crypt hash, or the password itself without openssl.
ari_password_lines() {
    local pw
    IFS= read -r pw || true
    [ -n "$pw" ] || { echo "install.sh: no ARI password found ($ETC/ari-password or $ETC/env)" >&2; return 1; }
    if command -v openssl >/dev/null 2>&1; then
        printf 'password = %s\npassword_format = crypt\n' "$(printf '%s' "$pw" | openssl passwd -6 -stdin)"
    else
        printf 'password = %s\npassword_format = plain\n' "$pw"
    fi
}
# The shipped ari.conf ($1) with its sandbox password replaced by ari_password_lines (password on stdin).
render_ari_conf() {
    local lines line done=0
    lines="$(ari_password_lines)" || return 1
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
            "password = "*) printf '%s\n' "$lines"; done=$((done + 1)) ;;
            "password_format = "*) ;;
            *) printf '%s\n' "$line" ;;
        esac
    done <"$1"
    [ "$done" = 1 ] || { echo "install.sh: $1 must hold exactly one 'password = ' line" >&2; return 1; }
}
# The shipped pjsip_auth.conf ($1) with a new random password on every `password = ` line.
render_pjsip_auth() {
    local line count=0
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
            "password = "*) printf 'password = %s\n' "$(random_secret)"; count=$((count + 1)) ;;
            *) printf '%s\n' "$line" ;;
        esac
    done <"$1"
    [ "$count" -gt 0 ] || { echo "install.sh: $1 holds no 'password = ' line" >&2; return 1; }
}

# ---- checks ------------------------------------------------------------------------------------------------
if [ "$DRY_RUN" = 0 ] && [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run it as root (or try --dry-run)" >&2
    exit 1
fi
for f in pyproject.toml src/callcore/cli.py sql deploy/callcore.service deploy/callcore.yaml asterisk/ari.conf \
         asterisk/pjsip_auth.conf; do
    [ -e "$SOURCE/$f" ] || { echo "install.sh: $SOURCE does not look like the callcore source tree (no $f)" >&2; exit 1; }
done
if [ "$DRY_RUN" = 0 ] && [ -z "$DESTDIR" ]; then
    if [ "$CONFIG_ONLY" = 1 ] && ! id "$SERVICE_USER" >/dev/null 2>&1; then
        echo "install.sh: --config-only: there is no user $SERVICE_USER yet (run the full install first)" >&2
        exit 1
    fi
    if [ "$ASTERISK_CONFIG" = 1 ] && ! getent group "$AST_GROUP" >/dev/null 2>&1; then
        echo "install.sh: --asterisk-config: no group $AST_GROUP (install Asterisk first: apt-get install asterisk)" >&2
        exit 1
    fi
fi
if [ "$CONFIG_ONLY" = 1 ]; then
    :  # no virtualenv, no Python needed
elif ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install.sh: callcore needs Python >= 3.11 ($PYTHON: $("$PYTHON" --version 2>&1 || echo missing));" \
         "pass --python" >&2
    exit 1
fi
if [ "$CONFIG_ONLY" = 0 ] && ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "install.sh: $PYTHON cannot create virtualenvs (Debian: apt-get install python3-venv)" >&2
    exit 1
fi

# ---- 1. user -----------------------------------------------------------------------------------------------
if [ "$CONFIG_ONLY" = 1 ]; then
    say "--config-only: no user, code or units; configuration and secrets${DESTDIR:+ under $DESTDIR}"
else
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
fi  # not --config-only

# ---- 3. config and secrets ---------------------------------------------------------------------------------
say "configuration in $ETC"
ensure_dir "$ETC" 0750 root "$SERVICE_USER"
if exists "$ETC/admin-token"; then
    echo "    $ETC/admin-token exists (kept)"
    TOKEN_SHA256=""
else
    TOKEN="cc_$(random_secret)"
    TOKEN_SHA256="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
    write_file "$ETC/admin-token" 0600 root:root "the admin API token (callcore status, curl)" <<<"$TOKEN"
    unset TOKEN
fi
if exists "$ETC/callcore.yaml"; then
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
# The ARI password: generated once into ari-password (callcore reads it: owner callcore, 0600), unless an older
# install keeps it in env as CALLCORE_ARI_PASSWORD.
NEW_ARI=0
if exists "$ETC/ari-password"; then
    echo "    $ETC/ari-password exists (kept)"
elif exists "$ETC/env" && grep -q '^CALLCORE_ARI_PASSWORD=' "$(at "$ETC/env")"; then
    echo "    the ARI password is CALLCORE_ARI_PASSWORD in $ETC/env (kept)"
else
    { random_secret; echo; } | write_file "$ETC/ari-password" 0600 "$SERVICE_USER:$SERVICE_USER" \
        "a generated ARI password (CALLCORE_ARI_PASSWORD_FILE)"
    NEW_ARI=1
fi
if exists "$ETC/env"; then
    echo "    $ETC/env exists (kept)"
    if [ "$NEW_ARI" = 1 ] && ! grep -q '^CALLCORE_ARI_PASSWORD_FILE=' "$(at "$ETC/env")"; then
        echo "    NOTE: add CALLCORE_ARI_PASSWORD_FILE=$ETC/ari-password to $ETC/env"
    fi
else
    write_file "$ETC/env" 0600 root:root "secrets: where the ARI password is" <<EOF
# /etc/callcore/env — secrets of callcore.service (root 0600; systemd reads it before dropping privileges).
# Generated by install.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Never commit or log this file.
# The ARI password (generated by install.sh; the same one is in Asterisk's ari.conf as a crypt hash):
CALLCORE_ARI_PASSWORD_FILE=$ETC/ari-password
# An external PostgreSQL (recommended in production); empty: the embedded one in $STATE/pgdata.
#CALLCORE_DATABASE_URL=postgresql://callcore:PASSWORD@db.example.org:5432/callcore?sslmode=verify-full
#CALLCORE_DATABASE_URL_FILE=/etc/callcore/database-url
EOF
fi

# ---- 4. the Asterisk side ----------------------------------------------------------------------------------
if [ "$NEW_ARI" = 1 ]; then
    say "Asterisk: the ARI user for $AST_ETC/ari.conf"
    if [ "$DRY_RUN" = 1 ]; then
        ARI_LINES=""
    else
        ARI_LINES="$(current_ari_password | ari_password_lines)"
    fi
    write_file "$ETC/asterisk-ari.conf" 0600 root:root "the [callcore] ARI user to add to $AST_ETC/ari.conf" <<EOF
; Add to /etc/asterisk/ari.conf (generated by callcore's install.sh; the password is /etc/callcore/ari-password):
[callcore]
type = user
read_only = no
$ARI_LINES
EOF
    unset ARI_LINES
fi

CHANGED_FILES=""
if [ "$ASTERISK_CONFIG" = 1 ]; then
    say "Asterisk configuration in $AST_ETC (--asterisk-config, from $SOURCE/asterisk)"
    FRESH=0
    if ! exists "$AST_ETC/.callcore"; then
        # The first time: what is there (Debian's samples, or an earlier configuration) moves aside, once.
        FRESH=1
        if [ -d "$(at "$AST_ETC")" ] && [ -n "$(ls -A "$(at "$AST_ETC")")" ]; then
            aside="$AST_ETC.dist"
            exists "$aside" && aside="$AST_ETC.before-callcore.$(date +%Y%m%d%H%M%S)"
            run mv "$(at "$AST_ETC")" "$(at "$aside")"
        fi
        ensure_dir "$AST_ETC" 0750 root "$AST_GROUP"
        write_file "$AST_ETC/.callcore" 0640 "root:$AST_GROUP" "marks callcore's configuration" <<EOF
callcore's Asterisk configuration, installed by install.sh --asterisk-config on $(date -u +%Y-%m-%dT%H:%M:%SZ).
The files that were here before are in $AST_ETC.dist (or $AST_ETC.before-callcore.*).
EOF
    fi
    for src in "$SOURCE"/asterisk/*.conf; do
        name="$(basename "$src")"
        dest="$AST_ETC/$name"
        if [ "$FRESH" = 0 ] && exists "$dest"; then
            case "$name" in
                ari.conf|pjsip_auth.conf)
                    echo "    $dest holds secrets (kept)"; continue ;;
            esac
            if cmp -s "$src" "$(at "$dest")"; then
                echo "    $dest is current"
            elif exists "$dest.callcore-new" && cmp -s "$src" "$(at "$dest.callcore-new")"; then
                echo "    $dest differs from the shipped one (kept; the shipped one is $dest.callcore-new)"
                CHANGED_FILES="$CHANGED_FILES $name"
            else
                write_file "$dest.callcore-new" 0640 "root:$AST_GROUP" "the shipped $name, next to yours (kept)" <"$src"
                CHANGED_FILES="$CHANGED_FILES $name"
            fi
            continue
        fi
        case "$name" in
            ari.conf)
                if [ "$DRY_RUN" = 1 ]; then
                    content=""
                else
                    content="$(current_ari_password | render_ari_conf "$src")"
                fi
                printf '%s\n' "$content" | write_file "$dest" 0640 "root:$AST_GROUP" \
                    "ARI with the callcore user (the ARI password's crypt hash)"
                unset content ;;
            pjsip_auth.conf)
                if [ "$DRY_RUN" = 1 ]; then
                    content=""
                else
                    content="$(render_pjsip_auth "$src")"
                fi
                printf '%s\n' "$content" | write_file "$dest" 0640 "root:$AST_GROUP" \
                    "the agent phones' SIP passwords (generated)"
                unset content ;;
            *)
                write_file "$dest" 0640 "root:$AST_GROUP" "callcore's $name" <"$src" ;;
        esac
    done
fi

# ---- 5. systemd units and the admin wrapper ----------------------------------------------------------------
if [ "$CONFIG_ONLY" = 0 ]; then
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
fi  # not --config-only

say "done"
if [ -n "$CHANGED_FILES" ]; then
    echo "NOTE: in $AST_ETC, yours differ from the shipped files (compare each with its .callcore-new):$CHANGED_FILES"
fi
if [ "$ASTERISK_CONFIG" = 1 ]; then
    cat <<EOF
Next steps (docs/operations.md, docs/security.md):
  1. Asterisk ($AST_ETC): acl.conf — your carrier's signalling addresses and your phones' networks (only
     127.0.0.1 may send SIP until you do); pjsip.conf — the trunk's contact and identify match (the carrier),
     the agents' static contacts removed when the phones register; pjsip_node.conf — bind to your SIP address;
     extensions.conf — your DIDs. Phones: user agentNN, password in $AST_ETC/pjsip_auth.conf.
     Then: systemctl restart asterisk
EOF
else
    cat <<EOF
Next steps (docs/operations.md):
  1. Asterisk: add $ETC/asterisk-ari.conf to /etc/asterisk/ari.conf, check http.conf (bindaddr = 127.0.0.1),
     route your DIDs to Stasis(callcore,inbound,\${EXTEN}), then: asterisk -rx 'module reload res_ari.so'
EOF
fi
cat <<EOF
  2. Edit $ETC/callcore.yaml (flows, queues, agents), then: $VENV/bin/callcore check-config $ETC/callcore.yaml
  3. Start: systemctl start callcore   (upgrade: systemctl restart callcore — migrations run at start)
  4. Check: callcore-admin status; journalctl -u callcore -f
EOF
