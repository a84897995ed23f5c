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
    step "install what is missing (Redis, libclang, the moto DynamoDB emulator)"
    eval "$(bash ci/install-deps)"
    export KVKIT_DEPS_READY=1
  fi
}

# start_services SERVICE... (redis, redis-cluster, dynamodb): finds or starts each one once,
# with the kv-services binary, exactly as the tests would (the environment's URL, else a
# container when the `containers` feature is on and a Docker engine answers, else a local
# binary), and exports the URLs for every test binary of the run. From then on a test that
# needs a service it cannot find fails. Everything started is stopped by PID when the calling
# script exits (containers are removed by their reapers once kv-services is gone).
start_services() {
  export KVKIT_REQUIRE_SERVICES=1
  KVKIT_SERVICE_PID_DIR=$(mktemp -d)
  export KVKIT_SERVICE_PID_DIR
  trap stop_services EXIT
  step "start the services: $*"
  # The same feature set as every other cargo command: nothing rebuilds.
  cargo build --workspace --all-features --locked --quiet --bin kv-services
  local target_dir=${CARGO_TARGET_DIR:-target}
  local services_log=$KVKIT_SERVICE_PID_DIR/services.out
  "$target_dir/debug/kv-services" "$@" >"$services_log" 2>&1 &
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
