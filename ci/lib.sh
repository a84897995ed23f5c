# Shared by the scripts in ci/ (sourced, not run): printing steps, installing what is missing,
# and starting the test services. ci/test and the GitHub workflow both go through these, so
# the two cannot drift apart.

# Each step says how far into the run it starts (seconds since the first script of the run
# began), so a log shows what every step cost.
export KVKIT_CI_STARTED=${KVKIT_CI_STARTED:-$(date +%s)}
step() { printf '\n==> [%4d s] %s\n' "$(($(date +%s) - KVKIT_CI_STARTED))" "$*"; }

# Installs what the build and tests need (ci/install-deps) once per run: scripts that ci/test
# calls inherit the environment it exported.
install_deps() {
  if [ -z "${KVKIT_DEPS_READY:-}" ]; then
    step "install what is missing (Redis, PostgreSQL, libclang, protoc, etcd, the moto and dynalite DynamoDB emulators)"
    eval "$(bash ci/install-deps)"
    use_rocksdb_cache
    export KVKIT_DEPS_READY=1
  fi
}

# RocksDB's C++ (343 files) is by far the largest part of a clean build: about 15 minutes of
# a two-core machine, more than everything else together. The first build on a machine keeps
# the static library librocksdb-sys made (save_rocksdb_cache); later runs, from any clone,
# have librocksdb-sys link that library (its documented ROCKSDB_LIB_DIR and ROCKSDB_STATIC)
# instead of compiling it again. The cache key names what the library depends on: the
# librocksdb-sys version in Cargo.lock, the C++ compiler, and the dev profile's settings for
# it; a change of any of them builds it again. The bindings are still generated each build.
# Each profile has a library of its own (`rocksdb_cache_dir release`, for ci/bench and
# ci/reliability): the key then names the release profile's settings.
rocksdb_cache_dir() {
  local build_profile=${1:-dev}
  local version compiler profile
  version=$(grep -A1 '^name = "librocksdb-sys"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
  compiler=$(c++ --version 2>/dev/null | head -n1)
  profile=$(sed -n "/^\[profile\.$build_profile/,/^$/p" Cargo.toml)
  local key suffix=
  key=$(printf '%s\n%s\n%s\n' "$version" "$compiler" "$profile" | sha256sum | cut -c1-16)
  [ "$build_profile" = dev ] || suffix=-$build_profile
  echo "${KVKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvkit}/rocksdb/$version-$key$suffix"
}

# use_rocksdb_cache [PROFILE]: link the library kept for PROFILE (default dev), if there is one.
use_rocksdb_cache() {
  local dir
  dir=$(rocksdb_cache_dir "${1:-dev}")
  if [ -f "$dir/librocksdb.a" ]; then
    echo "RocksDB: linking the static library built earlier on this machine ($dir)"
    export ROCKSDB_LIB_DIR=$dir ROCKSDB_STATIC=1
  fi
}

# save_rocksdb_cache [PROFILE]: after a build of PROFILE (default dev) that compiled RocksDB,
# keep its static library for the next runs.
save_rocksdb_cache() {
  [ -n "${ROCKSDB_LIB_DIR:-}" ] && return 0
  local build_profile=${1:-dev} dir built output=debug
  [ "$build_profile" = dev ] || output=$build_profile
  dir=$(rocksdb_cache_dir "$build_profile")
  [ -f "$dir/librocksdb.a" ] && return 0
  built=$(ls -t "${CARGO_TARGET_DIR:-target}/$output"/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n1)
  [ -n "$built" ] || return 0
  mkdir -p "$dir"
  cp "$built" "$dir/librocksdb.a.partial" && mv "$dir/librocksdb.a.partial" "$dir/librocksdb.a"
  echo "RocksDB: kept the static library for later runs in $dir"
}

# Workspaces with a Cargo.lock of their own, outside the main one: kv-sqlite beside sqlx 0.7
# and 0.8 (compat/README.md), and the zlayer-agent bridge (bridges/zlayer/README.md).
OWN_WORKSPACES=(compat/sqlx-0.7 compat/sqlx-0.8 bridges/zlayer)

# own_compiler_wrapper WORKSPACE: the compiler wrapper of its own crates: clippy-driver for the
# bridge, whose build is also its lint (bridges/zlayer/Cargo.toml denies warnings); none for
# the compat crates, which are tests only. The same in every build of it, or it rebuilds.
own_compiler_wrapper() {
  case $1 in
    bridges/*) echo clippy-driver ;;
    *) echo "" ;;
  esac
}

# own_target_dir WORKSPACE: where it builds: its own target/, or under CARGO_TARGET_DIR when
# that is set (a target directory shared with the main workspace would make their builds wait
# for each other's lock, and they run at once: see ci/test-workspace).
own_target_dir() {
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    echo "$CARGO_TARGET_DIR/own-workspaces/${1//\//-}"
  else
    echo "$1/target"
  fi
}

# start_services SERVICE... (redis, redis-cluster, dynamodb, moto, postgres, etcd,
# etcd-cluster): finds or starts each
# one once, with the kv-services binary, exactly as the tests would (the environment's URL,
# else a container when the `containers` feature is on and a Docker engine answers, else a
# local binary), and exports the URLs for every test binary of the run. From then on a test that
# needs a service it cannot find fails. Everything started is stopped by PID when the calling
# script exits (containers are removed by their reapers once kv-services is gone).
start_services() {
  export KVKIT_REQUIRE_SERVICES=1
  KVKIT_SERVICE_PID_DIR=$(mktemp -d)
  export KVKIT_SERVICE_PID_DIR
  trap stop_services EXIT
  step "start the services: $*"
  # The same feature set as every other cargo command: nothing rebuilds. ci/bench sets
  # KVKIT_SERVICES_PROFILE=release, the profile of everything it builds.
  local profile=${KVKIT_SERVICES_PROFILE:-debug} release=()
  [ "$profile" = release ] && release=(--release)
  cargo build "${release[@]}" --workspace --all-features --locked --quiet --bin kv-services
  local target_dir=${CARGO_TARGET_DIR:-target}
  local services_log=$KVKIT_SERVICE_PID_DIR/services.out
  "$target_dir/$profile/kv-services" "$@" >"$services_log" 2>&1 &
  echo "$!" >"$KVKIT_SERVICE_PID_DIR/kv-services.pid"
  # Up to 10 minutes: the first run of a container may pull its image.
  for _ in $(seq 6000); do
    grep -qx ready "$services_log" && break
    if ! kill -0 "$(cat "$KVKIT_SERVICE_PID_DIR/kv-services.pid")" 2>/dev/null; then
      cat "$services_log"; echo "kv-services exited before the services were ready" >&2; exit 1
    fi
    sleep 0.1
  done
  grep -qx ready "$services_log" || { cat "$services_log"; echo "services not ready after 600 s" >&2; exit 1; }
  eval "$(grep '^export ' "$services_log")"
  grep -v '^export ' "$services_log" || true
}

# Every server a test starts records its PID in $KVKIT_SERVICE_PID_DIR; whatever is still
# running at the end is stopped by PID, whether the tests passed or not.
stop_services() {
  for pid_file in "$KVKIT_SERVICE_PID_DIR"/*.pid; do
    [ -e "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null || true
  done
  rm -rf "$KVKIT_SERVICE_PID_DIR"
}
