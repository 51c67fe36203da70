#!/usr/bin/env bash
# Remote-repository benchmark: cairn against restic, side by side in one run, backing
# up and restoring one tree with a repository in a local folder, on an SFTP server
# (OpenSSH's sshd on loopback) and in S3 (versitygw on loopback).
#
#   sudo bench/remote.sh > bench/results-remote.md
#
# Environment:
#   SIZE_GIB    size of the test tree in GiB (default 1; fractions work: 0.2)
#   WORK        work folder (default /var/tmp/cairn-bench-remote; must not be on tmpfs)
#   BACKENDS    which repositories, in order (default "local sftp s3")
#   ROUNDS      run every backend's steps this many times, the tools taking turns,
#               and report each tool's fastest round (default 1)
#   SEED        seed of the generated data (default 42)
#   KEEP=1      keep the work folder afterwards (tree, last round's repositories, logs)
#   DROP_CACHES=0  do not drop the page cache before timed steps (default 1)
#   INSTALL=0   do not apt-get install missing tools (default 1)
#   CAIRN_REF   build cairn from this git commit (git archive) instead of the working tree
#
# The Markdown report goes to stdout, progress to stderr.
set -euo pipefail

SIZE_GIB=${SIZE_GIB:-1}
WORK=${WORK:-/var/tmp/cairn-bench-remote}
BACKENDS=${BACKENDS:-local sftp s3}
ROUNDS=${ROUNDS:-1}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive number" >&2; exit 2; }
SEED=${SEED:-42}
KEEP=${KEEP:-0}
DROP_CACHES=${DROP_CACHES:-1}
INSTALL=${INSTALL:-1}
CAIRN_REF=${CAIRN_REF:-}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TIME=/usr/bin/time
TOOLS="cairn restic"     # column order of the report
STEPS="first second restore"
ALIAS=cairn-bench       # the Host entry of the ssh config this script writes

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (page-cache drop; sshd): sudo $0"
case "$WORK" in /*) ;; *) die "WORK must be an absolute path" ;; esac
case "$WORK" in *[[:space:]]*) die "WORK must not contain spaces (it goes into an ssh config)" ;; esac
for b in $BACKENDS; do
    case $b in local|sftp|s3) ;; *) die "unknown backend $b (local, sftp or s3)" ;; esac
done

# ------------------------------------------------------------------ tools
# command -> Debian package
declare -A PKG=([restic]=restic [ssh]=openssh-client [ssh-keygen]=openssh-client
    [python3]=python3)
[ -x /usr/sbin/sshd ] || PKG[/usr/sbin/sshd]=openssh-server
missing=()
for c in "${!PKG[@]}"; do command -v "$c" >/dev/null 2>&1 || missing+=("${PKG[$c]}"); done
[ -x "$TIME" ] || missing+=(time)
if [ "${#missing[@]}" -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (INSTALL=0)"
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
PY=/usr/bin/python3; [ -x "$PY" ] || PY=$(command -v python3)
GENTREE="$PY $HERE/remote-tree.py"
TREE="$PY $HERE/files-tree.py"       # manifest, compare, stats
GO=$(command -v go || true)
[ -n "$GO" ] || GO=/usr/local/go/bin/go
VGW=$(command -v versitygw || echo "$("$GO" env GOPATH 2>/dev/null)/bin/versitygw")
if [[ " $BACKENDS " == *" s3 "* ]] && [ ! -x "$VGW" ]; then
    die "versitygw not found (go install github.com/versity/versitygw/cmd/versitygw@latest, as .ci/run does)"
fi

# The work folder must be on a real disk: on a tmpfs, "cold" reads would be RAM reads.
mkdir -p "$WORK"
fstype=$(df --output=fstype "$WORK" | tail -n 1 | tr -d ' ')
case "$fstype" in tmpfs|ramfs) die "$WORK is on $fstype; set WORK to a folder on disk" ;; esac
SIZE_BYTES=$(awk -v g="$SIZE_GIB" 'BEGIN { printf "%.0f", g * 1073741824 }')
[ "$SIZE_BYTES" -ge $((64 * 1048576)) ] || die "SIZE_GIB=$SIZE_GIB is too small (at least 0.0625)"
need=$(( SIZE_BYTES / 1024 * 5 ))   # KiB: tree + two repositories + restore, with room
avail=$(df --output=avail -k "$WORK" | tail -n 1 | tr -d ' ')
[ "$avail" -gt "$need" ] || die "$WORK has $((avail/1024/1024)) GiB free; about $((need/1024/1024)) GiB needed"

# ------------------------------------------------------------------ cleanup
SRV=$WORK/servers
SERVERS_UP=0
cleanup() {
    local rc=$?
    set +e
    if [ "$SERVERS_UP" = 1 ]; then "$ROOT/scripts/test-servers" stop "$SRV" >&2; fi
    if [ "$KEEP" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "${WORK:?}/src" "$WORK/repos" "$WORK/restore" "$WORK/home" "$WORK/bin" \
            "$WORK/times" "$WORK/logs" "$WORK/manifests" "$WORK/servers" "$WORK/password"
        rmdir "$WORK" 2>/dev/null
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SRC=$WORK/src
rm -rf "${WORK:?}/src" "$WORK/repos" "$WORK/restore" "$WORK/home" "$WORK/times" "$WORK/logs" \
    "$WORK/manifests" "$WORK/servers"
mkdir -p "$WORK/bin" "$WORK/repos" "$WORK/restore" "$WORK/home" "$WORK/times" "$WORK/logs" \
    "$WORK/manifests"
T=$WORK/times

# ------------------------------------------------------------------ build cairn
CAIRN=$WORK/bin/cairn
SRCDIR=$ROOT
if [ -n "$CAIRN_REF" ]; then
    # a clean tree of one commit, without touching the checkout
    SRCDIR=$WORK/bin/src
    rm -rf "$SRCDIR"; mkdir -p "$SRCDIR"
    git -c safe.directory='*' -C "$ROOT" archive "$CAIRN_REF" | tar -x -C "$SRCDIR" ||
        die "git archive $CAIRN_REF failed"
    CAIRN_COMMIT=$(git -c safe.directory='*' -C "$ROOT" rev-parse --short "$CAIRN_REF")
else
    CAIRN_COMMIT=$(git -c safe.directory='*' -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -c safe.directory='*' -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        CAIRN_COMMIT="$CAIRN_COMMIT (+ uncommitted changes)"
    fi
fi
log "building cairn in $SRCDIR"
if ! (cd "$SRCDIR" && "$GO" build -o "$CAIRN" ./cmd/cairn) >"$WORK/bin/build.log" 2>&1; then
    # git refusing a checkout owned by another user breaks VCS stamping only
    (cd "$SRCDIR" && "$GO" build -buildvcs=false -o "$CAIRN" ./cmd/cairn) \
        >"$WORK/bin/build.log" 2>&1 || { cat "$WORK/bin/build.log" >&2; die "cairn does not build (CAIRN_REF=HEAD builds the last commit)"; }
fi
GO_VERSION=$("$GO" version | cut -d' ' -f3)
VGW_VERSION=$("$GO" version -m "$VGW" 2>/dev/null | awk '$1 == "mod" { print $3; exit }' || true)

# ------------------------------------------------------------------ servers
log "starting sshd and versitygw on loopback (scripts/test-servers)"
SERVERS_UP=1
"$ROOT/scripts/test-servers" start "$SRV" >&2
# shellcheck disable=SC1091
. "$SRV/env"
SSHD_PID=$(cat "$SRV/ssh/sshd.pid")
VGW_PID=$(cat "$SRV/versitygw.pid")
S3_ENDPOINT=$CAIRN_TEST_S3_ENDPOINT

# Tools keep caches and state under $WORK/home, not in root's home. The ssh config
# there has a Host alias for the server, as a user would write it; cairn reads
# $HOME/.ssh/config, OpenSSH's ssh (which restic runs) reads the passwd entry's home,
# so restic's ssh gets -F.
export HOME=$WORK/home
export XDG_CACHE_HOME=$WORK/home/.cache XDG_CONFIG_HOME=$WORK/home/.config XDG_DATA_HOME=$WORK/home/.local/share
mkdir -p "$HOME/.ssh"; chmod 700 "$HOME/.ssh"
cat > "$HOME/.ssh/config" <<EOF
Host $ALIAS
    HostName ${CAIRN_TEST_SSHD_ADDR%:*}
    Port ${CAIRN_TEST_SSHD_ADDR##*:}
    User $CAIRN_TEST_SSHD_USER
    IdentityFile $CAIRN_TEST_SSHD_KEY
    IdentitiesOnly yes
    UserKnownHostsFile $CAIRN_TEST_SSHD_KNOWN_HOSTS
    StrictHostKeyChecking yes
    BatchMode yes
EOF
chmod 600 "$HOME/.ssh/config"
SSH_COMMAND="ssh -F $HOME/.ssh/config $ALIAS -s sftp"
export AWS_ACCESS_KEY_ID=$CAIRN_TEST_S3_ACCESS AWS_SECRET_ACCESS_KEY=$CAIRN_TEST_S3_SECRET
unset SSH_AUTH_SOCK AWS_PROFILE AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION \
    CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE RESTIC_REPOSITORY RESTIC_PASSWORD || true
PW=$WORK/password
printf '%s\n' bench-password-not-secret > "$PW"

# repo_spec TOOL BACKEND: the --repo of TOOL's repository on BACKEND
repo_spec() {
    case $2 in
        local) echo "$WORK/repos/$1" ;;
        sftp)  echo "sftp:$ALIAS:$CAIRN_TEST_SSHD_DIR/$1" ;;
        s3)    echo "s3:$S3_ENDPOINT/bench-$1/repo" ;;
    esac
}
# repo_dir TOOL BACKEND: where the repository's files are on this machine
repo_dir() {
    case $2 in
        local) echo "$WORK/repos/$1" ;;
        sftp)  echo "$CAIRN_TEST_SSHD_DIR/$1" ;;
        s3)    echo "$SRV/s3-root/bench-$1/repo" ;;
    esac
}
# tool TOOL BACKEND ARGS...: run TOOL on its repository on BACKEND, with the same
# password mechanics for both (a password file)
tool() {
    local t=$1 b=$2; shift 2
    case $t in
        cairn) "$CAIRN" "$1" --repo "$(repo_spec cairn "$b")" --password-file "$PW" "${@:2}" ;;
        restic)
            if [ "$b" = sftp ]; then
                restic --repo "$(repo_spec restic "$b")" --password-file "$PW" -o "sftp.command=$SSH_COMMAND" "$@"
            else
                restic --repo "$(repo_spec restic "$b")" --password-file "$PW" "$@"
            fi ;;
    esac
}
export -f tool repo_spec
export CAIRN PW ALIAS SSH_COMMAND S3_ENDPOINT WORK CAIRN_TEST_SSHD_DIR

# ------------------------------------------------------------------ test tree
log "making a ${SIZE_GIB} GiB test tree in $SRC (seed $SEED)"
t0=$(date +%s)
PARTS=$($GENTREE gen "$SRC" "$SIZE_BYTES" "$SEED")
read -r n_files n_dirs n_links n_bytes < <($TREE stats "$SRC")
log "tree: $n_files files, $n_dirs folders, $n_links symlinks, $((n_bytes/1048576)) MiB in $(( $(date +%s) - t0 )) s"
$TREE manifest "$SRC" "$WORK/manifests/src.json"

# ------------------------------------------------------------------ measuring
CLK_TCK=$(getconf CLK_TCK)
drop_caches() {
    sync
    if [ "$DROP_CACHES" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi
}
# server_ticks BACKEND: CPU clock ticks the server has used so far (with its reaped
# children: sshd forks a process per connection, which runs the sftp session)
server_ticks() {
    local pid
    case $1 in
        sftp) pid=$SSHD_PID
              # a session's time is added to sshd's once it has exited and been reaped
              for _ in $(seq 1 50); do pgrep -P "$pid" >/dev/null || break; sleep 0.1; done ;;
        s3) pid=$VGW_PID ;;
        *) echo 0; return ;;
    esac
    awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat"
}
ok_rc() { # TOOL RC: cairn/restic 3 = saved, but some sources unreadable
    case "$2" in 0|3) return 0 ;; *) return 1 ;; esac
}

# run_timed STEP BACKEND TOOL ROUND CMD...: run CMD cold under GNU time, then sync
# (so what a tool wrote is on disk when its clock stops); record wall, user+sys, max
# RSS, status and the server's CPU.
run_timed() {
    local step=$1 b=$2 t=$3 r=$4; shift 4
    local out=$T/$step.$b.$t.r$r logf=$WORK/logs/$step.$b.$t.r$r.log rc=0 s0 s1
    drop_caches
    log "  $b $step: $t$( [ "$ROUNDS" = 1 ] || echo " (round $r)")"
    s0=$(server_ticks "$b")
    $TIME -f '%e %U %S %M' -o "$out.time" -- bash -c '"$@"; rc=$?; sync; exit $rc' _ "$@" >"$logf" 2>&1 || rc=$?
    s1=$(server_ticks "$b")
    tail -n 1 "$out.time" > "$out.t"    # "Command exited with non-zero status N" comes first
    echo "$rc" > "$out.rc"
    awk -v a="$s0" -v b="$s1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f\n", (b - a) / hz }' > "$out.srv"
    if ! ok_rc "$t" "$rc"; then
        log "  $b $step: $t FAILED with status $rc; last lines of $logf:"
        tail -n 15 "$logf" | sed 's/^/      /' >&2
    elif [ "$rc" != 0 ]; then
        log "  $b $step: $t finished with warning status $rc"
    fi
    # keep logs small: --json prints a progress line per update
    tail -n 5 "$logf" > "$logf.tmp" && mv "$logf.tmp" "$logf"
}

# init TOOL BACKEND: a fresh, empty repository and no cache
init() {
    local t=$1 b=$2
    rm -rf "$(repo_dir "$t" "$b")" "$XDG_CACHE_HOME/$t"
    tool "$t" "$b" init >"$WORK/logs/init.$b.$t.log" 2>&1 ||
        { cat "$WORK/logs/init.$b.$t.log" >&2; die "$t init on $b failed"; }
    du -sb "$(repo_dir "$t" "$b")" | cut -f1 > "$T/init.$b.$t.repo"
}

declare -A VERIFY VERIFY_DETAIL
# step STEP BACKEND TOOL ROUND: one timed step
step() {
    local s=$1 b=$2 t=$3 r=$4 dst=$WORK/restore/$3 res
    case $s in
        first|second)
            case $t in
                cairn)  run_timed "$s" "$b" "$t" "$r" tool cairn "$b" backup --json "$SRC" ;;
                restic) run_timed "$s" "$b" "$t" "$r" tool restic "$b" backup --json "$SRC" ;;
            esac
            du -sb "$(repo_dir "$t" "$b")" | cut -f1 > "$T/$s.$b.$t.r$r.repo" ;;
        restore)
            rm -rf "$dst"; mkdir -p "$dst"
            case $t in
                cairn)  run_timed "$s" "$b" "$t" "$r" tool cairn "$b" restore latest --target "$dst" -q ;;
                restic) run_timed "$s" "$b" "$t" "$r" tool restic "$b" restore latest --target "$dst" ;;
            esac
            if [ "$r" = "$ROUNDS" ]; then
                # both restore the absolute path under the target
                if [ ! -d "$dst$SRC" ]; then
                    VERIFY[$b.$t]=FAIL; VERIFY_DETAIL[$b.$t]="no $SRC inside the restore folder"
                else
                    $TREE manifest "$dst$SRC" "$WORK/manifests/$b.$t.json"
                    if res=$($TREE compare "$WORK/manifests/src.json" "$WORK/manifests/$b.$t.json"); then
                        VERIFY[$b.$t]=PASS
                    else
                        VERIFY[$b.$t]=FAIL
                    fi
                    VERIFY_DETAIL[$b.$t]=$res
                fi
                log "  $b restore check, $t: ${VERIFY[$b.$t]}"
            fi
            rm -rf "$dst" ;;
    esac
}

# best STEP BACKEND TOOL: the round with the shortest wall time (of those that
# succeeded) is the one reported; all rounds' wall times go to .rounds
best() {
    local base=$T/$1.$2.$3 r pick="" w bw=""
    : > "$base.rounds"
    for (( r=1; r<=ROUNDS; r++ )); do
        [ -f "$base.r$r.t" ] || continue
        w=$(cut -d' ' -f1 "$base.r$r.t")
        if ok_rc "$3" "$(cat "$base.r$r.rc")"; then
            printf '%s ' "$w" >> "$base.rounds"
            if [ -z "$bw" ] || awk -v a="$w" -v b="$bw" 'BEGIN { exit !(a < b) }'; then bw=$w; pick=$r; fi
        else
            printf 'FAILED ' >> "$base.rounds"
        fi
    done
    [ -n "$pick" ] || pick=$ROUNDS
    for x in t rc srv repo; do
        if [ -f "$base.r$pick.$x" ]; then cp "$base.r$pick.$x" "$base.$x"; fi
    done
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START=$(loadavg)
START=$(date -u '+%Y-%m-%d %H:%M UTC')
tools=($TOOLS)
for (( r=1; r<=ROUNDS; r++ )); do
    # round r starts with the r-th tool
    order=()
    for (( i=0; i<${#tools[@]}; i++ )); do order+=("${tools[$(( (i + r - 1) % ${#tools[@]} ))]}"); done
    for b in $BACKENDS; do
        log "round $r of $ROUNDS, $b repositories (${order[*]})"
        for t in "${order[@]}"; do init "$t" "$b"; done
        for s in $STEPS; do
            for t in "${order[@]}"; do step "$s" "$b" "$t" "$r"; done
        done
        if [ "$KEEP" != 1 ] || [ "$r" != "$ROUNDS" ]; then
            for t in "${order[@]}"; do rm -rf "$(repo_dir "$t" "$b")" "$XDG_CACHE_HOME/$t"; done
        fi
    done
done
LOAD_END=$(loadavg)
for b in $BACKENDS; do for s in $STEPS; do for t in $TOOLS; do best "$s" "$b" "$t"; done; done; done

# ------------------------------------------------------------------ report
f() { echo "$T/$1.$2.$3"; }   # STEP BACKEND TOOL: the base name of its files
v_wall() { cut -d' ' -f1 "$(f "$@").t"; }
v_cpu()  { awk '{ print $2 + $3 }' "$(f "$@").t"; }
v_mem()  { cut -d' ' -f4 "$(f "$@").t"; }
v_srv()  { cat "$(f "$@").srv"; }
v_mbs()  { awk -v b="$n_bytes" -v w="$(v_wall "$@")" 'BEGIN { if (w + 0 > 0) print b / w / 1e6 }'; }
ok() { ok_rc "$3" "$(cat "$(f "$@").rc")"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "—"; else printf "%.2f", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
cell() { # STEP BACKEND TOOL: wall | CPU | peak | MB/s |
    local w c m t
    w=$(v_wall "$@"); c=$(awk -v c="$(v_cpu "$@")" 'BEGIN { printf "%.2f", c }')
    m=$(awk -v k="$(v_mem "$@")" 'BEGIN { printf "%.0f", k / 1024 }')
    t=$(awk -v x="$(v_mbs "$@")" 'BEGIN { printf "%.0f", x }')
    if ok "$@"; then echo "$w | $c | $m | $t |"
    else echo "FAILED (status $(cat "$(f "$@").rc")) | $c | $m | — |"
    fi
}
backend_name() {
    case $1 in
        local) echo "local folder" ;;
        sftp) echo "sftp (sshd)" ;;
        s3) echo "s3 (versitygw)" ;;
    esac
}
step_name() {
    case $1 in
        first) echo "first backup" ;;
        second) echo "second backup, no change" ;;
        restore) echo "full restore" ;;
    esac
}
read -r p_random p_text p_small < <(echo "$PARTS" | $PY -c 'import json,sys
p = json.load(sys.stdin)
print(" ".join("%d/%d" % (p[k]["files"], p[k]["bytes"] >> 20) for k in ("random", "text", "small")))')

echo "# Remote repository benchmark: cairn vs restic on $(echo "$BACKENDS" | sed 's/ /, /g')"
echo
echo "- date: $START (report at $(date -u '+%H:%M UTC'))"
echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), work folder on $fstype ($(df --output=source "$WORK" | tail -n 1))"
echo "- cairn $CAIRN_COMMIT ($GO_VERSION); $(restic version | head -n 1)"
echo "- servers on loopback, started by \`scripts/test-servers\`, storing on the same disk: $(ssh -V 2>&1 | cut -d, -f1) sshd (internal-sftp), versitygw ${VGW_VERSION:-?} (posix backend)"
echo "- sftp: \`--repo sftp:$ALIAS:PATH\` through a Host entry of \`~/.ssh/config\` (key, known_hosts); restic runs \`ssh -F ~/.ssh/config $ALIAS -s sftp\` (\`-o sftp.command\`). s3: \`s3:http://127.0.0.1:PORT/BUCKET/repo\`, keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Both tools read the password from a file, keep their default settings (connections, pack sizes, compression) and their local caches (\`XDG_CACHE_HOME\`)"
echo "- test tree: $(mib "$n_bytes") MiB in $n_files files, $n_dirs folders, $n_links symlinks (seed $SEED): large random files ${p_random%/*} / ${p_random#*/} MiB, compressible logs ${p_text%/*} / ${p_text#*/} MiB, small files ${p_small%/*} / ${p_small#*/} MiB (files / MiB)"
echo "- load average (1, 5, 15 min) when the measurements started: $LOAD_START; when they ended: $LOAD_END"
if [ "$ROUNDS" -gt 1 ]; then
    echo "- every backend's steps ran $ROUNDS times (fresh repositories and caches each round), the tools taking turns; the table shows each tool's fastest round (all rounds' wall times below)"
fi
echo "- every timed step starts with a dropped page cache$( [ "$DROP_CACHES" = 1 ] || echo ' — NOT (DROP_CACHES=0)') and ends with \`sync\`; wall and CPU (user+sys, with children such as restic's ssh) in seconds; peak = max RSS in MiB; MB/s = tree bytes / wall (10^6 bytes)"
echo
hdr="| repository | step |"; sep="| --- | --- |"
for t in $TOOLS; do hdr="$hdr $t wall | $t CPU | $t peak | $t MB/s |"; sep="$sep ---: | ---: | ---: | ---: |"; done
hdr="$hdr wall cairn/restic | CPU cairn/restic | peak cairn/restic |"; sep="$sep ---: | ---: | ---: |"
echo "$hdr"; echo "$sep"
for b in $BACKENDS; do
    for s in $STEPS; do
        line="| $(backend_name "$b") | $(step_name "$s") |"
        for t in $TOOLS; do line="$line $(cell "$s" "$b" "$t")"; done
        line="$line $(ratio "$(v_wall "$s" "$b" cairn)" "$(v_wall "$s" "$b" restic)") | $(ratio "$(v_cpu "$s" "$b" cairn)" "$(v_cpu "$s" "$b" restic)") | $(ratio "$(v_mem "$s" "$b" cairn)" "$(v_mem "$s" "$b" restic)") |"
        echo "$line"
    done
done
echo
echo "Below 1 means cairn is faster / uses less."
echo
remote=""
for b in $BACKENDS; do [ "$b" = local ] || remote="$remote $b"; done
if [ -n "$remote" ]; then
    echo "Server CPU seconds in the same rounds (sshd's sessions with internal-sftp; versitygw), beside the client's:"
    echo
    hdr="| repository | step |"; sep="| --- | --- |"
    for t in $TOOLS; do hdr="$hdr $t client CPU | $t server CPU |"; sep="$sep ---: | ---: |"; done
    echo "$hdr"; echo "$sep"
    for b in $remote; do
        for s in $STEPS; do
            line="| $(backend_name "$b") | $(step_name "$s") |"
            for t in $TOOLS; do line="$line $(awk -v c="$(v_cpu "$s" "$b" "$t")" 'BEGIN { printf "%.2f", c }') | $(v_srv "$s" "$b" "$t") |"; done
            echo "$line"
        done
    done
    echo
fi
echo "Repository size in MiB after the first and the second backup (\`du -sb\` of its files on the server's disk):"
echo
hdr="| repository |"; sep="| --- |"
for t in $TOOLS; do hdr="$hdr $t first | $t second |"; sep="$sep ---: | ---: |"; done
echo "$hdr"; echo "$sep"
for b in $BACKENDS; do
    line="| $(backend_name "$b") |"
    for t in $TOOLS; do
        for s in first second; do
            if [ -f "$(f "$s" "$b" "$t").repo" ]; then line="$line $(mib "$(cat "$(f "$s" "$b" "$t").repo")") |"; else line="$line — |"; fi
        done
    done
    echo "$line"
done
echo
if [ "$ROUNDS" -gt 1 ]; then
    echo "Wall seconds of every round:"
    echo
    hdr="| repository | step |"; sep="| --- | --- |"
    for t in $TOOLS; do hdr="$hdr $t |"; sep="$sep ---: |"; done
    echo "$hdr"; echo "$sep"
    for b in $BACKENDS; do
        for s in $STEPS; do
            line="| $(backend_name "$b") | $(step_name "$s") |"
            for t in $TOOLS; do line="$line $(sed 's/ *$//; s/ /, /g' "$(f "$s" "$b" "$t").rounds") |"; done
            echo "$line"
        done
    done
    echo
fi
echo "Restore check of the last round (every path, type, size, SHA-256 and symlink target against the source; mode, owner and mtime differences counted, not graded):"
echo
status=0
for b in $BACKENDS; do
    for t in $TOOLS; do
        echo "- $(backend_name "$b"), $t: **${VERIFY[$b.$t]:-FAIL}** — ${VERIFY_DETAIL[$b.$t]:-}"
        [ "${VERIFY[$b.$t]:-FAIL}" = PASS ] || status=1
    done
done
for b in $BACKENDS; do for s in $STEPS; do for t in $TOOLS; do ok "$s" "$b" "$t" || status=1; done; done; done
exit $status
