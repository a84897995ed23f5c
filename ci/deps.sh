# How ci/install-deps decides what is missing (sourced, not run). Each test looks for a
# dependency the way its consumer does, so that what counts as present here is what the build
# and the tests will find. ci/test-deps checks them on made-up directory trees.

# The oldest Redis the tests support: the oldest image of the workflow's matrix.
REDIS_MIN_VERSION=6.2
# The oldest etcd the tests support (Debian 12's etcd-server).
ETCD_MIN_VERSION=3.4
# The DynamoDB emulator, pinned: a new moto release must not change a test run unannounced.
MOTO_VERSION=5.2.5

# libclang_found [ROOT]: whether bindgen (through clang-sys, with its `runtime` feature, as
# librocksdb-sys uses it) would find a libclang under ROOT (default /). clang-sys searches
# $LIBCLANG_PATH and then these directories, for `libclang.so`, `libclang-*.so`,
# `libclang.so.*` and `libclang-*.so.*`, and skips `libclang-cpp` (Clang's C++ library, which
# Debian installs without libclang itself and which bindgen cannot use).
libclang_found() {
  local root=${1:-} dir file name
  local dirs=(/usr/local/llvm*/lib* /usr/local/lib*/*/* /usr/local/lib*/* /usr/local/lib*
    /usr/lib*/*/* /usr/lib*/* /usr/lib*)
  local patterns=(libclang.so libclang-*.so libclang.so.* libclang-*.so.*)
  local searched=()
  [ -n "${LIBCLANG_PATH:-}" ] && searched+=("$LIBCLANG_PATH")
  for dir in "${dirs[@]}"; do
    for dir in $root$dir; do [ -d "$dir" ] && searched+=("$dir"); done
  done
  for dir in "${searched[@]}"; do
    for pattern in "${patterns[@]}"; do
      for file in "$dir"/$pattern; do
        name=${file##*/}
        [ -e "$file" ] && [[ $name != *-cpp.* ]] && return 0
      done
    done
  done
  return 1
}

# version_at_least HAVE WANT: whether dotted version HAVE >= WANT.
version_at_least() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# redis_server_found: whether `redis-server` on PATH (the one the tests start) runs and is at
# least REDIS_MIN_VERSION. It prints e.g. "Redis server v=7.0.15 sha=...".
redis_server_found() {
  local banner version
  banner=$(redis-server --version 2>/dev/null) || return 1
  version=$(sed -n 's/.* v=\([0-9][0-9.]*\).*/\1/p' <<<"$banner")
  [ -n "$version" ] && version_at_least "$version" "$REDIS_MIN_VERSION"
}

# redis_cli_found: whether `redis-cli` runs (the tests create the cluster with it).
redis_cli_found() {
  redis-cli --version >/dev/null 2>&1
}

# postgres_found [ROOT]: whether the test services (kv-test-services' postgres module) would
# find PostgreSQL's server binaries, `initdb` and `postgres`: each on PATH or in a directory
# searched after it (ROOT/usr/local/bin, ROOT/usr/bin, ROOT/usr/sbin), else both in one
# ROOT/usr/lib/postgresql/VERSION/bin, VERSION a number like 15 or 9.6 (Debian and Ubuntu
# install them there, off PATH). The client tools alone (psql, pg_isready) do not count.
postgres_found() {
  local root=${1:-} dir name found path_dirs
  IFS=: read -ra path_dirs <<<"$PATH"
  local searched=("${path_dirs[@]}" "$root/usr/local/bin" "$root/usr/bin" "$root/usr/sbin")
  found=0
  for name in initdb postgres; do
    for dir in "${searched[@]}"; do
      [ -f "$dir/$name" ] && { found=$((found + 1)); break; }
    done
  done
  [ "$found" = 2 ] && return 0
  for dir in "$root"/usr/lib/postgresql/*/bin; do
    name=${dir%/bin}
    name=${name##*/}
    [[ $name =~ ^[0-9]+(\.[0-9]+)*$ ]] && [ -f "$dir/initdb" ] && [ -f "$dir/postgres" ] && return 0
  done
  return 1
}

# moto_found VENV: whether VENV has moto_server and exactly MOTO_VERSION of moto.
moto_found() {
  local venv=$1
  [ -x "$venv/bin/moto_server" ] || return 1
  [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" \
    = "$MOTO_VERSION" ]
}

# The dynalite DynamoDB emulator: ci/dynalite/package.json pins it and package-lock.json
# every package under it; it runs on the machine's Node.js, which must be this new.
NODE_MIN_VERSION=20

# node_found: whether `node` on PATH (which runs dynalite's launcher) is NODE_MIN_VERSION or
# newer. It prints e.g. "v20.20.2".
node_found() {
  local version
  version=$(node --version 2>/dev/null) || return 1
  version=${version#v}
  [ -n "$version" ] && version_at_least "$version" "$NODE_MIN_VERSION"
}

# dynalite_found DIR LOCK: whether DIR holds dynalite installed from lockfile LOCK: its
# launcher, and a copy of exactly that lockfile (ci/install-deps keeps one beside what
# `npm ci` installed from it), so that a changed pin installs again.
dynalite_found() {
  local dir=$1 lock=$2
  [ -x "$dir/node_modules/.bin/dynalite" ] && [ -f "$dir/package-lock.json" ] \
    && cmp -s "$dir/package-lock.json" "$lock"
}

# protoc_found: whether etcd-client's build script (prost-build) would find `protoc`: the
# program $PROTOC names, else `protoc` on PATH; either must run (`protoc --version`).
protoc_found() {
  "${PROTOC:-protoc}" --version >/dev/null 2>&1
}

# etcd_found [ROOT]: whether the test services (kv-test-services' etcd module) would find an
# `etcd` of at least ETCD_MIN_VERSION: the first file named `etcd` on PATH, else in
# ROOT/usr/local/bin, ROOT/usr/bin or ROOT/usr/sbin. It prints e.g. "etcd Version: 3.4.23".
etcd_found() {
  local root=${1:-} dir path_dirs version
  IFS=: read -ra path_dirs <<<"$PATH"
  for dir in "${path_dirs[@]}" "$root/usr/local/bin" "$root/usr/bin" "$root/usr/sbin"; do
    [ -f "$dir/etcd" ] || continue
    version=$("$dir/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: \([0-9][0-9.]*\).*/\1/p')
    [ -n "$version" ] && version_at_least "$version" "$ETCD_MIN_VERSION"
    return
  done
  return 1
}

# openssl_found: whether the `openssl` command on PATH runs, as kv-test-services' certificates
# module runs it to make the CA and certificates of the TLS tests (PostgreSQL, etcd).
openssl_found() {
  openssl version >/dev/null 2>&1
}

# etcdctl_found: whether `etcdctl` runs (for looking at the data by hand, as the READMEs show).
etcdctl_found() {
  etcdctl version >/dev/null 2>&1
}
