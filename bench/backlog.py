#!/usr/bin/env python3
"""SQL for the benchmark backlog, on stdout: ROWS purchases as multi-row INSERTs.

    backlog.py <database> <rows> [rows-per-transaction]

Each INSERT statement is one autocommit transaction of `rows-per-transaction`
rows (default 1,000; the last one may be shorter), so the binlog gets exactly
<rows> row images of <database>.purchases. Values are pseudo-random but seeded,
so two runs write the same bytes. Pipe into `mariadb <database>`.
"""

import random
import sys


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print("usage: backlog.py <database> <rows> [rows-per-transaction]", file=sys.stderr)
        return 2
    database, rows = sys.argv[1], int(sys.argv[2])
    per_tx = int(sys.argv[3]) if len(sys.argv) == 4 else 1000
    if rows < 1 or per_tx < 1:
        print("backlog.py: rows and rows-per-transaction must be positive", file=sys.stderr)
        return 2
    rng = random.Random(1)
    out = sys.stdout
    out.write(f"USE `{database}`;\n")
    head = "INSERT INTO purchases (user_id, item_id, status, quantity, purchase_price) VALUES "
    written = 0
    while written < rows:
        n = min(per_tx, rows - written)
        values = ",".join(
            f"({rng.randint(1, 10000)},{rng.randint(1, 1000)},1,{rng.randint(1, 5)},"
            f"{rng.randint(100, 99999) / 100:.2f})"
            for _ in range(n)
        )
        out.write(head + values + ";\n")
        written += n
    return 0


if __name__ == "__main__":
    sys.exit(main())
