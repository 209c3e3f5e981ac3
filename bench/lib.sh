# What the bench scripts share; sourced from the repository's top.
#
# ferry_binary: sets $ferry to the build to measure: FERRY_BIN when given
# (bench/before_after.sh runs two builds), else a release build of this
# tree (made here).
ferry_binary() {
  if [ -n "${FERRY_BIN:-}" ]; then
    ferry=$FERRY_BIN
  else
    cargo build --release -q
    ferry=$PWD/target/release/ferry
  fi
}

# port: a free TCP port on loopback.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
