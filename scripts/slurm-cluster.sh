#!/usr/bin/env bash
# A real single-node Slurm cluster (slurmctld + slurmd + munged, Debian's packages) that lives
# entirely under one folder, for the test suite and for trying the Slurm launcher by hand.
#
#   scripts/slurm-cluster.sh install              # apt-get the packages (no-op when present)
#   scripts/slurm-cluster.sh up DIR [--cpus N]    # start a cluster under DIR, wait for idle
#   scripts/slurm-cluster.sh down DIR             # cancel its jobs, stop its daemons
#
# `up` prints `export SLURM_CONF=DIR/slurm.conf` as the only line on stdout (everything else
# goes to stderr), so `eval "$(scripts/slurm-cluster.sh up DIR)"` works; DIR/env.sh holds the
# same line. Clients (sbatch, squeue, scancel, scontrol) need that SLURM_CONF. A second `up`
# of the same DIR (after `down`) keeps the cluster's state: its jobs, the job id counter. Two
# clusters (two DIRs) can run side by side: each gets its own free pair of ports.
#
# It needs root: the daemons run as root (SlurmUser=root, SlurmdUser=root), as plain background
# daemons, without systemd or cgroups. What was measured with it (Debian 12, slurm 22.05.8,
# munge 0.5.15, 2 cores) is at the end of this file.
set -euo pipefail

# The daemons live in /usr/sbin, which a non-login root shell may not have on PATH.
export PATH="$PATH:/usr/sbin:/sbin"

# AuthInfo=cred_expire: Slurm rejects values under 5 s (and falls back to 120 s), and a job
# requeued from inside its batch script may only start again after cred_expire (+1) seconds,
# so the smallest accepted value gives the fastest restart. See the measurements below.
readonly CRED_EXPIRE=5
# How long `up` waits for the node to turn idle, and `down` for jobs/daemons to end.
readonly UP_TIMEOUT_S=60
readonly JOB_END_WAIT_S=5
readonly DAEMON_STOP_WAIT_S=10
# Lock files shared by every cluster on this machine: one serialises `install` (two parallel
# installs would race on the temporary policy-rc.d and on dpkg's lock), the other serialises
# choosing ports until the chosen ones are bound, so two `up`s side by side never pick the same.
readonly LOCK_DIR="${TMPDIR:-/tmp}"
readonly INSTALL_LOCK="$LOCK_DIR/slurm-cluster-sh.install.lock"
readonly PORT_LOCK="$LOCK_DIR/slurm-cluster-sh.ports.lock"

log() { printf 'slurm-cluster.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    cat >&2 <<'EOF'
usage: slurm-cluster.sh install
       slurm-cluster.sh up DIR [--cpus N]
       slurm-cluster.sh down DIR
EOF
    exit 2
}

need_root() {
    [[ $EUID -eq 0 ]] || die "$1 needs root (the Slurm daemons run as root here)"
}

# ---------------------------------------------------------------------------------------------
# install

have_all() {
    local c
    for c in sbatch slurmctld slurmd munged; do
        command -v "$c" >/dev/null 2>&1 || return 1
    done
}

# True when apt has package lists at all (a fresh image often has none: install would fail
# with "Unable to locate package" until `apt-get update`).
have_package_lists() {
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

cmd_install() {
    # Fast path: nothing to do, no root needed, no lock taken.
    if have_all; then
        return 0
    fi
    need_root install
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install slurmctld, slurmd, slurm-client and munge by hand"

    local lock_fd
    exec {lock_fd}>"$INSTALL_LOCK"
    flock -w 600 "$lock_fd" || die "timed out waiting for another install ($INSTALL_LOCK)"
    # Another install may have finished while this one waited.
    if have_all; then
        return 0
    fi

    # The packages ship init.d scripts that invoke-rc.d would start right away (a system-wide
    # munged on the default socket, a slurmctld with /etc/slurm's config). policy-rc.d exiting
    # 101 means "action forbidden", so nothing starts. Only add one where there is none, and
    # remove only ours: the EXIT trap also runs on failure, and the INT/TERM/HUP traps turn a
    # signal into an exit so that the EXIT trap runs then too.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# Temporary, from slurm-cluster.sh install: start no daemons.\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        trap 'exit 130' INT TERM HUP
    fi

    local -a apt=(apt-get -y -q -o DPkg::Lock::Timeout=300)
    local -a pkgs=(slurmctld slurmd slurm-client munge)
    export DEBIAN_FRONTEND=noninteractive
    # apt's output goes to stderr: stdout stays for what callers may parse.
    # `apt-get update` only when needed: it is the slow, network-heavy step.
    if ! have_package_lists || ! "${apt[@]}" install --no-install-recommends "${pkgs[@]}" >&2; then
        log "apt-get update, then install again"
        "${apt[@]}" update >&2
        "${apt[@]}" install --no-install-recommends "${pkgs[@]}" >&2
    fi
    have_all || die "installed, but sbatch/slurmctld/slurmd/munged are still not all on PATH"
}

# ---------------------------------------------------------------------------------------------
# helpers shared by up and down

# True when PID names a live (not zombie) process. PID 1 here reaps orphans late, so a killed
# daemon can linger as a zombie: that counts as gone.
# (The /proc helpers use builtins only, no forks: `down` scans every process a few times.)
alive() {
    local pid=$1 stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
    # Field 3 (state) follows the ")" that closes the command name.
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# The program PID runs (basename of /proc/PID/exe). Debian installs the Slurm daemons as
# slurmd-wlm, slurmctld-wlm, slurmstepd-wlm behind alternatives symlinks: drop that suffix. After
# a package upgrade the old binary shows as "... (deleted)": drop that too.
program_of() {
    local exe
    exe=$(readlink "/proc/$1/exe" 2>/dev/null || true)
    exe=${exe% (deleted)}
    exe=${exe##*/}
    printf '%s\n' "${exe%-wlm}"
}

# True when PID runs program NAME and its command line mentions MARK (this cluster's config or
# socket path). Pids get reused, and another cluster's daemons run the same program, so both
# checks are needed before signalling.
is_ours() {
    local pid=$1 name=$2 mark=$3 arg
    local -a argv=()
    alive "$pid" || return 1
    [[ $(program_of "$pid") == "$name" ]] || return 1
    { mapfile -d '' -t argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
    for arg in "${argv[@]}"; do
        [[ $arg != *"$mark"* ]] || return 0
    done
    return 1
}

# Stop the daemon whose pid file is FILE: SIGTERM, then SIGKILL after DAEMON_STOP_WAIT_S.
stop_daemon() {
    local file=$1 name=$2 mark=$3 pid i
    [[ -f $file ]] || return 0
    pid=$(tr -dc '0-9' <"$file" || true)
    if [[ -n $pid ]] && is_ours "$pid" "$name" "$mark"; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < DAEMON_STOP_WAIT_S * 10; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "$name (pid $pid) ignored SIGTERM for ${DAEMON_STOP_WAIT_S}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

# The pids of this process and of all its ancestors: never signal those (a caller that sourced
# DIR/env.sh has this cluster's SLURM_CONF in its environment too).
self_and_ancestors() {
    local pid=$BASHPID ppid key val
    while [[ $pid =~ ^[0-9]+$ && $pid -gt 1 ]]; do
        printf '%s\n' "$pid"
        ppid=""
        while read -r key val; do
            [[ $key != PPid: ]] || { ppid=$val; break; }
        done 2>/dev/null <"/proc/$pid/status"
        [[ -n $ppid && $ppid != "$pid" ]] || break
        pid=$ppid
    done
    printf '%s\n' "$$"
}

# Pids of leftover processes of the cluster under DIR:
# - job processes: their environment holds SLURM_CONF=DIR/slurm.conf (sbatch exports the
#   submitter's environment) and SLURM_JOB_ID. Requiring SLURM_JOB_ID as well spares a user's
#   shell, or a test harness, that merely sourced DIR/env.sh; and never this script or its
#   ancestors.
# - with "all", also this cluster's slurmstepd processes: they run with an empty environment
#   and a command line like "slurmstepd: [7.batch]", but keep DIR/slurmd.log open. slurmstepd
#   ignores SIGTERM and, once slurmd is gone, outlives its job's processes.
leftovers() {
    local dir=$1 which=${2:-jobs} conf=$1/slurm.conf pid entry comm has_conf has_job
    local -a env=()
    local -A skip=()
    while read -r pid; do skip[$pid]=1; done < <(self_and_ancestors)
    for pid in /proc/[0-9]*; do
        pid=${pid#/proc/}
        [[ -z ${skip[$pid]:-} ]] || continue
        alive "$pid" || continue
        # environ is NUL-separated: one array entry per variable.
        env=()
        { mapfile -d '' -t env <"/proc/$pid/environ"; } 2>/dev/null || continue
        has_conf=0 has_job=0
        for entry in ${env[@]+"${env[@]}"}; do
            case $entry in
            "SLURM_CONF=$conf") has_conf=1 ;;
            SLURM_JOB_ID=*) has_job=1 ;;
            esac
        done
        if ((has_conf && has_job)); then
            printf '%s\n' "$pid"
            continue
        fi
        [[ $which == all ]] || continue
        comm=""
        { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || continue
        if [[ $comm == slurmstepd* && $(program_of "$pid") == slurmstepd ]] \
            && [[ $(readlink "/proc/$pid/fd/"* 2>/dev/null) == *"$dir/slurmd.log"* ]]; then
            printf '%s\n' "$pid"
        fi
    done
}

# End the leftovers (see above): SIGTERM, then SIGKILL after 3 s (slurmstepd needs SIGKILL).
end_leftovers() {
    local dir=$1 which=$2 i
    local -a rest=()
    mapfile -t rest < <(leftovers "$dir" "$which")
    ((${#rest[@]})) || return 0
    log "ending ${#rest[@]} leftover process(es) of the cluster: ${rest[*]}"
    kill -TERM "${rest[@]}" 2>/dev/null || true
    for ((i = 0; i < 15; i++)); do
        sleep 0.2
        mapfile -t rest < <(leftovers "$dir" "$which")
        ((${#rest[@]})) || return 0
    done
    kill -KILL "${rest[@]}" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# up

# True when TCP port P is bound by anything (IPv4 or IPv6, any state): /proc/net/tcp* lists
# local addresses as HEXADDR:HEXPORT in column 2. No dependency on ss or netstat.
port_in_use() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Print a free port P such that P and P+1 are both free (slurmctld, slurmd). Random start
# below the kernel's ephemeral range, so that outgoing connections never hold our ports.
pick_ports() {
    local lo hi base p i
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range || lo=32768
    hi=$((lo > 12000 ? lo - 2 : 30000))
    base=$((10000 + (RANDOM * 32768 + RANDOM) % (hi - 10000)))
    for ((i = 0; i < 2000; i++)); do
        p=$((10000 + (base - 10000 + 2 * i) % (hi - 10000)))
        if ! port_in_use "$p" && ! port_in_use $((p + 1)); then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}

# Tails of the logs, for a clear error when the cluster does not come up.
print_log_tails() {
    local dir=$1 f
    for f in "$dir"/munged.log "$dir"/slurmctld.log "$dir"/slurmd.log; do
        [[ -f $f ]] || continue
        printf '\n==> %s (last 20 lines) <==\n' "$f" >&2
        tail -n 20 "$f" >&2 || true
    done
}

# Once daemons may be running, any failure of `up` (an explicit up_failed, or set -e ending the
# script anywhere) goes through this EXIT trap: show the logs, stop what was started.
UP_DIR=""
on_up_exit() {
    local rc=$?
    if ((rc != 0)) && [[ -n $UP_DIR ]]; then
        print_log_tails "$UP_DIR"
        log "stopping what was started (logs stay under $UP_DIR)"
        cmd_down "$UP_DIR" || true
    fi
    exit "$rc"
}
up_failed() {
    log "error: $*"
    exit 1
}

cmd_up() {
    local dir="" cpus=""
    while (($#)); do
        case $1 in
        --cpus) (($# >= 2)) || usage; cpus=$2; shift 2 ;;
        --cpus=*) cpus=${1#--cpus=}; shift ;;
        -*) usage ;;
        *) [[ -z $dir ]] || usage; dir=$1; shift ;;
        esac
    done
    [[ -n $dir ]] || usage
    if [[ -n $cpus && ! $cpus =~ ^[1-9][0-9]*$ ]]; then
        die "--cpus wants a positive integer, not '$cpus'"
    fi
    need_root up
    have_all || die "Slurm is not installed: run '$0 install' first"

    # Absolute paths throughout: the daemons chdir, and slurm.conf wants absolute paths.
    dir=$(realpath -m -- "$dir")
    local conf=$dir/slurm.conf sock=$dir/munge.socket
    # A unix socket path holds at most 107 bytes (sun_path).
    ((${#sock} <= 107)) || die "DIR is too long for a unix socket path: $sock (${#sock} > 107 bytes)"
    [[ $dir != *[[:space:],=#]* ]] || die "DIR must not hold spaces, commas, '=' or '#' (slurm.conf syntax): $dir"

    if [[ -f $dir/slurmctld.pid ]] && is_ours "$(tr -dc '0-9' <"$dir/slurmctld.pid")" slurmctld "$conf"; then
        die "a cluster is already up under $dir: run '$0 down $dir' first"
    fi

    # munged refuses to start unless every folder on its socket's path is searchable by all
    # and not group/other-writable unless sticky ("Socket is inaccessible: execute permissions
    # for all required on ..."); --force (below) turns that into a warning, and root clients reach
    # the socket anyway, but users other than root would not. So: DIR and the folders created
    # here get 0755; an existing ancestor that is not searchable by all (the user's folder, e.g.
    # /root at 0700) is left alone, with a warning, rather than silently chmod-ed.
    local p=$dir
    local -a created=()
    while [[ ! -e $p ]]; do
        created+=("$p")
        p=$(dirname "$p")
    done
    if [[ $p == "$dir" ]]; then
        p=$(dirname "$dir") # DIR itself exists: it gets 0755 below
    fi
    while :; do
        (($(stat -c '0%a' "$p") & 1)) \
            || log "warning: $p is $(stat -c %A "$p"): only root can reach $sock (munged wants every folder on the path searchable by all)"
        [[ $p != / ]] || break
        p=$(dirname "$p")
    done
    mkdir -p "$dir/state" "$dir/spool"
    chmod 0755 "$dir" "$dir/state" "$dir/spool" ${created[@]+"${created[@]}"}

    # The node is this host under its own short name, which need not resolve: HOST(127.0.0.1)
    # and NodeAddr give the addresses, and `slurmd -N HOST` tells slurmd which node it is.
    local host
    host=$(uname -n)
    host=${host%%.*}
    [[ $host =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || host=localnode

    # This machine's CPUs, sockets, cores, threads and memory, as slurmd sees them (first line of
    # `slurmd -C`, minus its NodeName and any trailing UpTime). With --cpus N the node claims N
    # single-thread cores on one socket instead; config_overrides makes slurmd accept a node
    # description that differs from the hardware (otherwise more CPUs than exist = "Low CPUs").
    local hw mem node_hw overrides=""
    hw=$(env -u SLURM_CONF slurmd -C 2>/dev/null | head -n 1) || true
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    [[ -n $mem ]] || die "could not read this machine's resources from 'slurmd -C': $hw"
    if [[ -n $cpus ]]; then
        node_hw="CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem"
        overrides="SlurmdParameters=config_overrides"
    else
        node_hw=$(sed -e 's/^NodeName=[^ ]* *//' -e 's/ *UpTime=.*//' <<<"$hw")
    fi

    # MUNGE: a fresh key per cluster (1024 random bytes; munged wants it 0400 and owned by the
    # user munged runs as, root here), and a munged of our own on a socket under DIR.
    if [[ ! -s $dir/munge.key ]]; then
        (umask 077 && head -c 1024 /dev/urandom >"$dir/munge.key")
    fi
    chown root:root "$dir/munge.key"
    chmod 0400 "$dir/munge.key"

    # From here on, a failure stops whatever was started (see on_up_exit).
    UP_DIR=$dir
    trap on_up_exit EXIT
    trap 'exit 130' INT TERM HUP

    # --force: start even over a stale socket from an earlier, killed munged.
    # --origin=127.0.0.1: munged otherwise resolves the hostname for the credential's origin.
    # Its environment carries SLURM_CONF too, like the Slurm daemons below (see `down`).
    rm -f "$sock" "$sock.lock"
    SLURM_CONF=$conf munged --force --origin=127.0.0.1 --socket="$sock" --key-file="$dir/munge.key" \
        --log-file="$dir/munged.log" --pid-file="$dir/munged.pid" --seed-file="$dir/munged.seed" \
        || up_failed "munged did not start"
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -S $sock ]] && break
        sleep 0.1
    done
    [[ -S $sock ]] || up_failed "munged did not create $sock"

    # Ports: pick a free pair and keep others from picking it until both daemons listen.
    local port_fd port
    exec {port_fd}>"$PORT_LOCK"
    flock -w 120 "$port_fd" || up_failed "timed out waiting for $PORT_LOCK"
    port=$(pick_ports) || up_failed "no free port pair found"

    # Each setting, and why:
    # - ClusterName: required, and slurmctld refuses to start when it differs from the name in
    #   StateSaveLocation ("CLUSTER NAME MISMATCH"): derived from DIR, so the same across `up`s
    #   of one DIR (ports change) and different for clusters side by side.
    # - AuthInfo: our munged's socket (daemons and clients alike) and the shortest cred_expire,
    #   which is also how long a requeued job waits before it may start again (default 120 s).
    # - SlurmUser/SlurmdUser root: no slurm user needed; we are root anyway.
    # - proctrack/linuxproc, task/none, jobacct_gather/none: need neither cgroups nor systemd.
    #   linuxproc tracks a job's processes by parentage, so processes that double-fork away
    #   escape it (down's environment sweep catches those).
    # - cons_tres + CR_Core: jobs share the node by cores; memory is not a consumable (with
    #   CR_Core_Memory and no default memory per job, every job would claim the whole node).
    # - MinJobAge=3600: finished jobs stay visible to squeue/scontrol for an hour (no slurmdbd,
    #   so no sacct); JobCompType filetxt keeps a line per finished job as well.
    # - ReturnToService=2: a node that was DOWN comes back as soon as its slurmd registers.
    # - SchedulerParameters/bf_interval: sbatch -> RUNNING in ~1 s instead of ~2 s (~3 s for
    #   the first job of a new controller) with the defaults; the backfill pass every second
    #   is what starts a new job here, the main loop every 2 s catches the rest.
    # - KillWait left at its default, 30 s, as on most real clusters (SIGTERM .. SIGKILL).
    local cluster
    cluster=c$(printf '%s' "$dir" | cksum | cut -d' ' -f1)
    cat >"$conf" <<EOF
# Written by scripts/slurm-cluster.sh up; a single-node cluster under $dir.
ClusterName=$cluster
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=$CRED_EXPIRE
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=1
$overrides
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host $node_hw State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

    # Both daemons daemonize themselves and write their pid files; `-f` also puts the config
    # path on their command line, which `down` checks before signalling them.
    export SLURM_CONF=$conf
    slurmctld -f "$conf" || up_failed "slurmctld did not start"
    slurmd -f "$conf" -N "$host" || up_failed "slurmd did not start"
    # One deadline for both waits below ($SECONDS counts whole seconds since the script began).
    local deadline=$((SECONDS + UP_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        port_in_use "$port" && port_in_use $((port + 1)) && break
        sleep 0.1
    done
    exec {port_fd}>&- # release the port lock

    # Wait for the node to be idle (sinfo's compact state "idle"; "idle*" means not
    # responding), failing early if a daemon died.
    local state=""
    for ((i = 0; SECONDS < deadline; i++)); do
        state=$(timeout 10 sinfo -h -N -n "$host" -o '%t' 2>/dev/null || true)
        [[ $state != idle ]] || break
        # INVAL (the node description does not match what slurmd found) never clears by itself.
        [[ $state != inval ]] || up_failed "node $host is INVAL: see 'Setting node ... state to INVAL' in the slurmctld log below"
        if ((i % 10 == 9)); then
            local d
            for d in slurmctld slurmd; do
                if [[ ! -f $dir/$d.pid ]] || ! alive "$(tr -dc '0-9' <"$dir/$d.pid")"; then
                    up_failed "$d died while starting"
                fi
            done
        fi
        sleep 0.1
    done
    [[ $state == idle ]] || up_failed "node $host not idle after ${UP_TIMEOUT_S}s (sinfo says '${state:-nothing}')"
    UP_DIR=""

    printf 'export SLURM_CONF=%q\n' "$conf" >"$dir/env.sh"
    log "cluster up under $dir (node $host, ports $port/$((port + 1)))"
    printf 'export SLURM_CONF=%q\n' "$conf"
}

# ---------------------------------------------------------------------------------------------
# down

# True once squeue (cluster CONF) lists no job that is pending, running or completing; false
# after SECS seconds.
wait_jobs_gone() {
    local conf=$1 secs=$2 i left
    for ((i = 0; i < secs * 4; i++)); do
        left=$(SLURM_CONF=$conf timeout 10 squeue -h -o '%i' 2>/dev/null | wc -l) || left=0
        ((left > 0)) || return 0
        sleep 0.25
    done
    return 1
}

cmd_down() {
    (($# == 1)) || usage
    need_root down
    local dir
    dir=$(realpath -m -- "$1")
    local conf=$dir/slurm.conf sock=$dir/munge.socket
    # Our own children must not carry a SLURM_CONF of their own (a caller that sourced env.sh
    # passes one): clients below get it explicitly.
    unset SLURM_CONF
    if [[ ! -d $dir ]]; then
        log "nothing under $dir"
        return 0
    fi

    # 1. Cancel every job, while the controller still runs: stopping slurmd alone leaves jobs
    #    running (orphaned to PID 1). %F is the array's job id (a plain job's own id), so one
    #    scancel per array covers its pending tasks too. timeout: a hung controller must not
    #    hang down.
    local ctld_pid="" ctld_up=0
    [[ -f $dir/slurmctld.pid ]] && ctld_pid=$(tr -dc '0-9' <"$dir/slurmctld.pid" || true)
    if [[ -n $ctld_pid && -f $conf ]] && is_ours "$ctld_pid" slurmctld "$conf"; then
        ctld_up=1
    fi
    if ((ctld_up)); then
        local -a jobs=()
        mapfile -t jobs < <(SLURM_CONF=$conf timeout 20 squeue -h -o '%F' 2>/dev/null | sort -u)
        if ((${#jobs[@]})); then
            log "cancelling ${#jobs[@]} job(s)"
            SLURM_CONF=$conf timeout 20 scancel "${jobs[@]}" 2>/dev/null || true
            # Cancelled jobs show CG (completing) until their processes are gone; wait a little.
            # A job whose processes ignore SIGTERM would keep running until KillWait (30 s):
            # end those processes directly, then give slurmstepd a moment to report the end.
            wait_jobs_gone "$conf" "$JOB_END_WAIT_S" || {
                end_leftovers "$dir" jobs
                wait_jobs_gone "$conf" 5 || true
            }
        fi
    fi

    # 2. The daemons, by their pid files, each checked to be that program of this cluster.
    stop_daemon "$dir/slurmd.pid" slurmd "$conf"
    stop_daemon "$dir/slurmctld.pid" slurmctld "$conf"
    stop_daemon "$dir/munged.pid" munged "$sock"

    # 3. Whatever is left of this cluster (job processes that escaped, slurmstepd).
    end_leftovers "$dir" all
    rm -f "$sock" "$sock.lock"
    log "cluster under $dir is down"
}

# ---------------------------------------------------------------------------------------------

(($# >= 1)) || usage
cmd=$1
shift
case $cmd in
install) (($# == 0)) || usage; cmd_install ;;
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
-h | --help | help) usage ;;
*) usage ;;
esac

# ---------------------------------------------------------------------------------------------
# Measured with this script (Debian 12, slurm 22.05.8, munge 0.5.15, 2 cores, root, bash 5.2).
# Timings: `date +%s.%N` around the commands, job scripts logging `date +%s.%N` per signal.
#
# install: 8 packages, 10 s with warm package lists (policy-rc.d absent: invoke-rc.d printed
#   "policy-rc.d denied execution of start" for each daemon, none started, file removed after);
#   7 ms when already installed.
# 1. up -> node idle: 0.19-1.3 s (7 runs). sbatch -> RUNNING (squeue %T, and the job's own start
#    time): 0.80-0.92 s on a fresh cluster, 0.93-1.06 s warm. With no SchedulerParameters and
#    bf_interval: 2.86 s fresh, 1.95-1.98 s warm. `--dependency=afterany:ARRAY` job started
#    0.94 s after the last task ended; it ran after a task that exited 1 (FAILED).
# 2. `sbatch --parsable --array=0,2,5%2 script` works (prints the array id). `squeue -h -t all -r
#    -j ID -o '%i %T %r'` prints "ID_TASK STATE REASON", e.g.
#      2_0 PENDING None                (right after submit, before the first scheduling pass)
#      2_5 PENDING JobArrayTaskLimit   (held back by %2)
#      2_0 RUNNING None
#      2_0 COMPLETED None
#      2_2 FAILED NonZeroExitCode      (exit 3)
#      2_5 CANCELLED None              (scancel ID_5 while running; COMPLETING None until gone)
#      5_1 CANCELLED JobArrayTaskLimit (pending tasks, after scancel of the whole array)
#    Without -r, pending tasks collapse into one line: "5_[1-3%1] PENDING JobArrayTaskLimit".
#    `scancel ID_3` of a single *pending* task removes it: squeue -t all -r no longer lists 5_3
#    at all. Array tasks have their own SLURM_JOB_ID (task 3_0 ran as job 6, 3_1 as job 3).
# 3. `#SBATCH --time=1` + `#SBATCH --signal=B:USR1@30`: slurmctld checks time limits every 30 s
#    (fixed phase from its start), and sends the warning signal at the first check where
#    end - now <= 30 + 30 s: USR1 came 31.95 s, 31.0 s and 48.0 s before the limit (jobs started
#    at different phases), i.e. 30-60 s early, never late. The kill came 28.2 s, 29.2 s and
#    12.2 s after the limit (0-30 s late). With B: only the batch shell gets USR1: a background
#    child that trapped USR1 got nothing unless the script forwarded it (forward arrived
#    10-190 ms later). slurmstepd sends SIGCONT along with the USR1: a bash script that traps
#    CONT as well loses the USR1 trap (reproduced outside Slurm: trap both, `wait`, send both:
#    only the CONT trap runs) -- do not trap CONT. At the limit: SIGCONT + SIGTERM to every
#    process of the job at once (batch shell and child within 2 ms; the batch shell's `wait`
#    returns 143), SIGKILL KillWait = 30 s later (last heartbeat of a TERM-ignoring child 29.6 s
#    after the TERM). The output file gets "*** JOB 1 ON vm CANCELLED AT ... DUE TO TIME LIMIT
#    ***"; final state TIMEOUT (squeue shows COMPLETING TimeLimit meanwhile).
# 4. In the USR1 trap, after forwarding: `scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_
#    TASK_ID}"` works on the running task: exit 0, no output, ~20 ms. The job is then killed at
#    once (SIGTERM to batch shell and child, ~10 ms later; output gets "*** JOB 6 ON vm CANCELLED
#    AT ... DUE TO JOB REQUEUE ***"). squeue: COMPLETING None until its processes are gone, then
#    PENDING BeginTime for cred_expire + 1 = 6 s (EligibleTime = end + 6 s), then RUNNING:
#    rerun started 5.5 s and 7.0 s after the requeue call (a process ignoring SIGTERM delays it
#    by KillWait: 36 s). cred_expire=4 is rejected ("error: AuthInfo=cred_expire=4 invalid" in
#    slurmctld.log) and the default applies: EligibleTime = requeue + 121 s. SLURM_RESTART_COUNT
#    is unset on the first attempt and 1 on the rerun (scontrol: Restarts=1). The output file is
#    truncated on the rerun unless `--open-mode=append`; with it both attempts are kept. No
#    `--requeue` needed (JobRequeue defaults to 1, scontrol shows Requeue=1); with `--no-requeue`
#    scontrol requeue fails, exit 1: "4_0: Requested operation is presently disabled". The job
#    completion file logs the requeued attempt as a line with JobState=PENDING.
# 5. `scancel ID_TASK` of a running task: SIGCONT + SIGTERM to every process of the job (batch
#    shell and its background child, 17-18 ms after scancel), SIGKILL 29.7 s later (KillWait)
#    for what ignored the TERM. A job whose processes exit on TERM is CANCELLED 85 ms after
#    scancel.
# 6. afterany on an array: see 1 (ran after all tasks, a failed one included).
# 7. Controller down (slurm.conf present, nothing listening): sbatch fails after 9.0 s, exit 1,
#    stderr "sbatch: error: Batch job submission failed: Unable to contact slurm controller
#    (connect failure)"; squeue and sinfo likewise 9.0 s ("slurm_load_jobs error: Unable to
#    contact slurm controller (connect failure)"). `scontrol ping` answers in 8-48 ms: exit 1,
#    stdout "Slurmctld(primary) at vm is DOWN" plus a "RESTORE SLURMCTLD DAEMON TO SERVICE"
#    banner; exit 0 and "Slurmctld(primary) at vm is UP" when up. A SLURM_CONF naming a missing
#    file: sbatch retries for 60 s ("cannot stat file ..., retrying in 1sec up to 60sec"), then
#    "fatal: Unable to process configuration file", exit 1; without SLURM_CONF at all: "fatal:
#    Could not establish a configuration source".
# down: 0.7 s for an idle cluster, 26 ms when already down; 10 s with jobs whose processes ignore
#   SIGTERM (5 s wait, SIGTERM/SIGKILL to the job processes, then the daemons); a process a job
#   detached with setsid was ended too (its environment). slurmd needs no SIGKILL then; it does
#   (10 s) if it is stopped while a job is still completing. Killed daemons linger as zombies
#   for a few seconds until PID 1 reaps them.
