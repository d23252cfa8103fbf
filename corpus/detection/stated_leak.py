#!/usr/bin/env python3
"""Checks the smallest leak the detector states against leaks of that size: judges a leak-free
file (a corpus twin, or `hydrowatch simulate --no-events`), reads the rise `hydrowatch detect`
states for SERIES at the end, then adds a persistent rise of that size to SERIES from 14:00 on
N days spread from START_DAY to END_DAY (one file each) and scores each with the twin: found
within 3 days, and credibly. Standard library only.

    corpus/detection/stated_leak.py BIN FILE.csv CONFIG.toml SERIES START_DAY END_DAY N
"""
import csv
import datetime
import os
import re
import subprocess
import sys
import tempfile

if len(sys.argv) != 8:
    sys.exit(__doc__)
binp, src, cfg, series = sys.argv[1:5]
d0, d1, n = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
work = tempfile.mkdtemp(prefix="stated-leak-")
verdicts = os.path.join(work, "judged.csv")
out = subprocess.run([binp, '--config', cfg, 'detect', '--input', src, '--output', verdicts],
                     capture_output=True, text=True, check=True).stdout
m = re.search(re.escape(series) + r': .*smallest leak it sees: a persistent rise of ([\d.]+)', out)
if not m:
    sys.exit(f"{src}: no smallest leak stated for {series} (is it a flow with nights judged?)")
rise = float(m.group(1)); print(os.path.basename(src), series, 'stated rise', rise)
rows = list(csv.reader(open(src)))
head, body = rows[0], rows[1:]
col = head.index(series)
t0 = datetime.datetime.fromisoformat(body[0][0])
found = 0; cred = 0
for k in range(n):
    day = d0 + k * (d1 - d0) // n
    start = (t0 + datetime.timedelta(days=day)).replace(hour=14, minute=0)
    path = os.path.join(work, f'leak{k}.csv')
    with open(path, 'w', newline='') as f:
        w = csv.writer(f); w.writerow(head)
        for r in body:
            r2 = list(r)
            if datetime.datetime.fromisoformat(r[0]) >= start and r2[col] != '':
                r2[col] = f"{float(r2[col]) + rise:.2f}"
            w.writerow(r2)
    labels = os.path.join(work, 'labels.csv')
    with open(labels, 'w') as f:
        f.write('start,end,kind,series\n')
        end = t0 + datetime.timedelta(days=400)
        f.write(f"{start:%Y-%m-%d %H:%M:%S},{end:%Y-%m-%d %H:%M:%S},leak,{series}\n")
    o = subprocess.run([binp, '--config', cfg, 'detect', '--input', path, '--output', verdicts,
                        '--labels', labels, '--twin', src],
                       capture_output=True, text=True, check=True).stdout
    line = [l for l in o.splitlines() if l.startswith('| leak | ') and '|' in l][0]
    ok = '**missed**' not in line
    c = line.rstrip().endswith('| yes |')
    found += ok; cred += c
    print(' ', start, line.split('|')[4].strip(), line.split('|')[6].strip(), 'credible' if c else '')
print(f'found {found}/{n}, credible {cred}/{n}')
