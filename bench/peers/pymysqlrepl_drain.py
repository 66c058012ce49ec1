#!/usr/bin/env python3
"""Peer: python-mysql-replication reads a binlog range and counts row images.

    pymysqlrepl_drain.py --port P --start-file F --start-pos N --end-file F --end-pos N
                         [--host H] [--user U] [--password W] [--schema DB] [--server-id ID]

Reads with BinLogStreamReader(only_events=[WriteRowsEvent, XidEvent],
resume_stream=True, log_file/log_pos, blocking=False) and stops at the first
event ending at or past the end position (XID events are asked for too because
the range ends with a commit, and they are cheap to decode). Prints one line: `rows=<n> seconds=<reading time>`.

is_mariadb stays False on purpose: in mysql-replication 1.0.x, is_mariadb=True
sends a GTID-style COM_BINLOG_DUMP that ignores log_file/log_pos (it is meant for
auto_position); the file/position dump works against MariaDB as is (the library
sets @mariadb_slave_capability=4 for that).
"""

import argparse
import sys
import time

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import XidEvent
from pymysqlreplication.row_event import WriteRowsEvent


def position_key(file: str, pos: int) -> tuple:
    # Binlog names share a prefix and a fixed-width number: plain comparison orders them.
    return (file, pos)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="")
    p.add_argument("--start-file", required=True)
    p.add_argument("--start-pos", type=int, required=True)
    p.add_argument("--end-file", required=True)
    p.add_argument("--end-pos", type=int, required=True)
    p.add_argument("--schema", help="count rows of this database only")
    p.add_argument("--server-id", type=int, default=987654)
    a = p.parse_args()

    end = position_key(a.end_file, a.end_pos)
    stream = BinLogStreamReader(
        connection_settings={
            "host": a.host,
            "port": a.port,
            "user": a.user,
            "passwd": a.password,
        },
        server_id=a.server_id,
        only_events=[WriteRowsEvent, XidEvent],
        only_schemas=[a.schema] if a.schema else None,
        resume_stream=True,
        log_file=a.start_file,
        log_pos=a.start_pos,
        blocking=False,
    )
    rows = 0
    started = time.monotonic()
    try:
        for event in stream:
            if isinstance(event, WriteRowsEvent):
                rows += len(event.rows)
            # stream.log_pos is the end of the event just read.
            if position_key(stream.log_file, stream.log_pos) >= end:
                break
    finally:
        stream.close()
    print(f"rows={rows} seconds={time.monotonic() - started:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
