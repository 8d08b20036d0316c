#!/usr/bin/env python3
"""Quantiles of Prometheus histograms over an interval, from two /metrics scrapes.

Usage: histq.py BEFORE AFTER NAME [NAME...]
For each histogram NAME prints "NAME count p50 p99", the quantiles as the upper
bound (in ms) of the bucket they fall in (">LAST" when past the last bound).
The scrapes are the text format pricing serves; only NAME_bucket lines are read.
"""
import re
import sys

LINE = re.compile(r'^(\w+)_bucket\{le="([^"]+)"\} (\d+)$')


def buckets(path, name):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = LINE.match(line.strip())
            if m and m.group(1) == name:
                out[m.group(2)] = int(m.group(3))
    return out


def quantile(delta, q):
    total = delta.get("+Inf", 0)
    if total == 0:
        return "n/a"
    finite = sorted((float(k), v) for k, v in delta.items() if k != "+Inf")
    for bound, cum in finite:
        if cum >= q * total:
            return "%g" % (bound * 1000)
    return ">%g" % (finite[-1][0] * 1000) if finite else "n/a"


def main(argv):
    if len(argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    for name in argv[3:]:
        b0, b1 = buckets(argv[1], name), buckets(argv[2], name)
        delta = {k: v - b0.get(k, 0) for k, v in b1.items()}
        print(name, delta.get("+Inf", 0), quantile(delta, 0.5), quantile(delta, 0.99))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
