#!/usr/bin/env python3
"""Checkpoint surgery for the fault tests (tests/cli_ckpt_faults.sh), on the container of
host/model/checkpoint.h: list a checkpoint's sections, or write a copy with 1-16 bytes of one
section changed and every CRC (section, table, header: plain CRC-32) computed again, so that only
the field checks behind the CRCs can reject it.

  ckpt_mutate.py list CKPT                       name size crc, one section a line
  ckpt_mutate.py mutate CKPT SECTION SEED OUT    prints what changed: offset and bytes
"""
import random
import struct
import sys
import zlib

HEADER, ENTRY, NAME = 32, 48, 24


def parse(data):
    if data[:8] != b"EXITRLCK":
        sys.exit("not an exitrl checkpoint")
    _version, n = struct.unpack_from("<II", data, 8)
    table = []
    for i in range(n):
        e = HEADER + i * ENTRY
        name = data[e:e + NAME].split(b"\0")[0].decode()
        offset, size, crc = struct.unpack_from("<QQI", data, e + NAME)
        table.append((name, offset, size, crc, e))
    return n, table


def resign(data, n, table):
    for _name, offset, size, _crc, e in table:
        struct.pack_into("<I", data, e + NAME + 16, zlib.crc32(bytes(data[offset:offset + size])))
    struct.pack_into("<I", data, 24, zlib.crc32(bytes(data[HEADER:HEADER + n * ENTRY])))
    struct.pack_into("<I", data, 28, zlib.crc32(bytes(data[:28])))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "list":
        _n, table = parse(open(sys.argv[2], "rb").read())
        for name, _offset, size, crc, _e in table:
            print(name, size, "%08x" % crc)
        return
    if len(sys.argv) != 6 or sys.argv[1] != "mutate":
        sys.exit(__doc__)
    data = bytearray(open(sys.argv[2], "rb").read())
    n, table = parse(data)
    sec = [t for t in table if t[0] == sys.argv[3]]
    if not sec:
        sys.exit("no section " + sys.argv[3])
    _name, offset, size, _crc, _e = sec[0]
    rng = random.Random(sys.argv[3] + ":" + sys.argv[4])
    k = min(rng.randint(1, 16), size)
    # Even seeds change a run of k bytes, odd seeds k bytes anywhere in the section; small sections
    # (counters, config) are where a field lies, so every byte is a candidate.
    if int(sys.argv[4]) % 2 == 0:
        start = rng.randrange(size - k + 1)
        where = list(range(start, start + k))
    else:
        where = sorted(rng.sample(range(size), k))
    changed = []
    for w in where:
        old = data[offset + w]
        new = rng.choice([v for v in range(256) if v != old])
        data[offset + w] = new
        changed.append("%d:%02x>%02x" % (w, old, new))
    resign(data, n, table)
    open(sys.argv[5], "wb").write(data)
    print(" ".join(changed))


main()
