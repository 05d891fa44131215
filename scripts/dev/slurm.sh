#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the tests marked `cluster` and for trying
# profiles/slurm before a real cluster. Debian's packages, daemons started directly (no systemd):
#
#   scripts/dev/slurm.sh up       install what is missing, start everything; a no-op when it is up
#   scripts/dev/slurm.sh down     stop everything `up` started (the state folder stays, for its logs)
#   scripts/dev/slurm.sh status   what runs, the partitions and the queue
#   scripts/dev/slurm.sh purge    down, then delete the state folder and the config files it wrote
#
# What runs: munged (authentication), MariaDB with a private data folder (the accounting
# database), slurmdbd (accounting: the Snakemake SLURM executor asks sacct for job states and
# waits forever without it), slurmctld and one slurmd. The node serves three partitions that stand
# for the workflow's hardware targets: cpu (the default), arm and gpu, and advertises one
# `gpu` GRES (backed by /dev/null) so that `--gres=gpu:1` requests are scheduled and accounted (no GPU is
# used). Jobs run under account `paretolm`.
#
# Runs as root (it installs packages and writes /etc/slurm). Settings, from the environment:
#   PARETOLM_SLURM_DIR   state folder: spool, logs, pid files, database (default /tmp/paretolm-slurm)
#   PARETOLM_SLURM_DB_PORT   MariaDB port on 127.0.0.1 (default 3316, away from a system MariaDB)
set -euo pipefail

STATE=${PARETOLM_SLURM_DIR:-/tmp/paretolm-slurm}
DB_PORT=${PARETOLM_SLURM_DB_PORT:-3316}
CLUSTER=paretolm
ACCOUNT=paretolm
NODE=$(hostname -s)
CONF_DIR=/etc/slurm
# Written into every config file this script writes, so it never overwrites a real cluster's.
MARK="# written by paretolm scripts/dev/slurm.sh"
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

log() { echo "slurm.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# -- processes, by the pid files in $STATE/run ----------------------------------------------------
pid_of() { # prints the pid of daemon $1 if it is alive
    local file=$STATE/run/$1.pid pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

stop() { # TERM, wait up to 20 s, then KILL; only the process of our pid file
    local name=$1 pid
    pid=$(pid_of "$name") || { rm -f "$STATE/run/$name.pid"; return 0; }
    log "stopping $name ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/run/$name.pid"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND until it succeeds
    local seconds=$1 what=$2; shift 2
    for _ in $(seq $((seconds * 4))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    die "$what did not come up within ${seconds}s; see the logs in $STATE/log"
}

# -- set-up ---------------------------------------------------------------------------------------
install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d on container images stops the packages' own services from starting; we start
    # the daemons ourselves below either way.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_conf() { # write_conf PATH MODE: stdin to PATH, refusing to replace a file we did not write
    local path=$1 mode=$2
    if [[ -e $path ]] && ! grep -qF "$MARK" "$path"; then
        die "$path exists and was not written by this script; move it away first (a real cluster?)"
    fi
    { echo "$MARK"; cat; } >"$path.new"
    chmod "$mode" "$path.new"
    mv "$path.new" "$path"
}

write_configs() {
    local cpus mem
    cpus=$(nproc)
    mem=$(free -m | awk '/^Mem:/ {print $2}')
    mkdir -p "$CONF_DIR"
    write_conf "$CONF_DIR/slurm.conf" 644 <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No systemd or cgroups here: processes are tracked through /proc, tasks are not bound, and
# memory is enforced by polling every task's RSS each second and killing a step over its --mem.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
# Cores and memory are consumable, so --cpus-per-task and --mem are allocated and accounted.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Accounting: sacct answers from slurmdbd; jobs need an account association.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
GresTypes=gpu
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 Features=$(uname -m) State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=arm Nodes=$NODE MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    # slurmd drops a GPU without a device file; /dev/null stands in for one (task/none binds no
    # devices, so nothing is opened), which makes the node schedule and account --gres=gpu:1.
    write_conf "$CONF_DIR/gres.conf" 644 <<EOF
NodeName=$NODE Name=gpu File=/dev/null Count=1
EOF
    # slurmdbd refuses a config that others can read (it holds the database password)
    write_conf "$CONF_DIR/slurmdbd.conf" 600 <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged already answers (ours or the machine's)
    fi
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
    install -d -o munge -g munge -m 0755 /run/munge
    # munged runs as user munge and writes its pid file and log into folders of its own
    install -d -o munge -g munge -m 0700 "$STATE/run/munge" "$STATE/log/munge"
    log "starting munged"
    runuser -u munge -- munged --pid-file="$STATE/run/munge/munged.pid" \
        --log-file="$STATE/log/munge/munged.log"
    wait_for 10 munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
    running mysql/mariadb && return 0
    local data=$STATE/mysql
    if [[ ! -d $data/mysql ]]; then
        log "creating the accounting database in $data"
        install -d -o mysql -g mysql "$data"
        mariadb-install-db --no-defaults --user=mysql --datadir="$data" --skip-test-db \
            --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.log" 2>&1
    fi
    # mariadbd runs as user mysql and writes its pid file, socket and log into folders of its own
    install -d -o mysql -g mysql "$STATE/run/mysql" "$STATE/log/mysql"
    log "starting MariaDB on 127.0.0.1:$DB_PORT"
    # --no-defaults: none of the machine's my.cnf applies; the database is only this one.
    setsid mariadbd --no-defaults --user=mysql --datadir="$data" --socket="$STATE/run/mysql/mysqld.sock" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --pid-file="$STATE/run/mysql/mariadb.pid" \
        --log-error="$STATE/log/mysql/mariadb.log" --innodb-buffer-pool-size=256M \
        --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
    wait_for 60 MariaDB mariadb --no-defaults --socket="$STATE/run/mysql/mysqld.sock" -u root -e "SELECT 1"
    mariadb --no-defaults --socket="$STATE/run/mysql/mysqld.sock" -u root <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start_slurmdbd() {
    running slurmdbd && return 0
    log "starting slurmdbd"
    slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
}

add_associations() {
    # The cluster, an account and the users who submit: root and whoever ran sudo. -i: no prompt.
    sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" ||
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -n list account format=account | grep -qw "$ACCOUNT" ||
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="paretolm tests" \
            Organization=paretolm >/dev/null
    local user
    for user in root ${SUDO_USER:-}; do
        sacctmgr -n list assoc user="$user" account="$ACCOUNT" format=user | grep -qw "$user" ||
            sacctmgr -i add user "$user" Account="$ACCOUNT" >/dev/null
        sacctmgr -i modify user "$user" set DefaultAccount="$ACCOUNT" >/dev/null || true
    done
}

start_slurmctld() {
    running slurmctld && return 0
    log "starting slurmctld"
    slurmctld
    wait_for 30 slurmctld scontrol ping
}

start_slurmd() {
    running slurmd && return 0
    log "starting slurmd"
    slurmd
    wait_for 60 "node $NODE" sh -c "sinfo -h -n $NODE -o %t | grep -Evq '^(unk|down|inval)'"
    # A node left drained (by a test, or by an earlier configuration) serves no job: resume it.
    if sinfo -h -n "$NODE" -o %t | grep -Eq 'drain|drng|down'; then
        log "resuming node $NODE ($(sinfo -h -n "$NODE" -o %E))"
        scontrol update NodeName="$NODE" State=RESUME
    fi
    wait_for 30 "node $NODE" sh -c "sinfo -h -n $NODE -o %t | grep -Eq '^(idle|mix|alloc)'"
}

cmd_up() {
    [[ $(id -u) == 0 ]] || die "run as root (it installs packages and starts system daemons)"
    if running mysql/mariadb && running slurmdbd && running slurmctld && running slurmd &&
        scontrol ping >/dev/null 2>&1; then
        log "already up"
        return 0
    fi
    install_packages
    mkdir -p "$STATE"/{run,log,spool/ctld,spool/d}
    write_configs
    start_munge
    start_mariadb
    start_slurmdbd
    add_associations
    start_slurmctld
    start_slurmd
    log "up: $(sinfo -h -o '%P' | tr '\n' ' ')on node $NODE; state in $STATE"
}

job_processes() { # pids of processes started by jobs of this cluster (its name is in their environment)
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}
        pid=${pid%/environ}
        # processes come and go while we look, and some environments are not ours to read
        { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qx "SLURM_CLUSTER_NAME=$CLUSTER" && echo "$pid"
    done
    return 0
}

cmd_down() {
    # Jobs first, and wait until their step daemons are gone, so no job outlives the cluster.
    if running slurmctld; then
        local jobs
        jobs=$(squeue -h -o %A 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            log "cancelling jobs $(echo $jobs)"
            scancel --full $jobs 2>/dev/null || true
        fi
        for _ in $(seq 120); do
            [[ -z $(squeue -h 2>/dev/null) && -z $(scontrol listpids 2>/dev/null | tail -n +2) ]] && break
            sleep 0.25
        done
    fi
    stop slurmd
    stop slurmctld
    stop slurmdbd
    stop mysql/mariadb
    stop munge/munged  # only when this script started it (the pid file is ours)
    # Without cgroups SLURM tracks a job's processes through their parents, so a process whose
    # parent died before the job was killed (a Snakemake that hung on SIGTERM, say) escapes it.
    local left
    left=$(job_processes)
    if [[ -n $left ]]; then
        log "killing processes that jobs left behind: $(echo $left)"
        kill -TERM $left 2>/dev/null || true
        sleep 2
        kill -KILL $(job_processes) 2>/dev/null || true
    fi
    log "down"
}

cmd_status() {
    local name
    for name in munge/munged mysql/mariadb slurmdbd slurmctld slurmd; do
        if running "$name"; then echo "$name: running ($(pid_of "$name"))"; else echo "$name: stopped"; fi
    done
    if running slurmctld; then
        sinfo
        squeue
    fi
}

cmd_purge() {
    cmd_down
    rm -rf "$STATE"
    local f
    for f in slurm.conf gres.conf slurmdbd.conf; do
        [[ -e $CONF_DIR/$f ]] && grep -qF "$MARK" "$CONF_DIR/$f" && rm -f "$CONF_DIR/$f"
    done
    log "purged"
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    purge) cmd_purge ;;
    *) echo "usage: $0 up|down|status|purge" >&2; exit 2 ;;
esac
