#!/usr/bin/env python3
"""Summarise a kcount.so dump: totals, hottest functions, costliest initcalls.
usage: report.py VMLINUX DUMP [TOP]   (System.map must sit next to VMLINUX)"""
import bisect, os, struct, subprocess, sys

vml, dump = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
sym, syms = {}, []
for l in open(os.path.join(os.path.dirname(vml), 'System.map')):
    a, t, n = l.split()[:3]
    sym[n] = int(a, 16)
    if t in 'tTwW':
        syms.append((int(a, 16), n))
syms.sort()
addrs = [a for a, _ in syms]
name = lambda a: syms[bisect.bisect_right(addrs, a) - 1][1]

# time-based busy waits and clock calibration: their count depends on host speed
WAITS = {'delay_tsc', 'delay_loop', 'setup_boot_APIC_clock', 'quick_pit_calibrate',
         'mc146818_avoid_UIP', 'native_io_delay'}
per, seq = {}, []
for l in open(dump):
    if l.startswith('# seq'):
        seq.append(int(l.split()[2]))
    elif l.startswith('#'):
        continue
    else:
        a, c = l.split()
        n = name(int(a, 16))
        per[n] = per.get(n, 0) + int(c)
tot = sum(per.values())
waits = sum(c for n, c in per.items() if n in WAITS)
print("kernel instructions: %.2fM total, %.2fM without busy-waits/calibration"
      % (tot / 1e6, (tot - waits) / 1e6))
print("hottest functions:")
for n, c in sorted(per.items(), key=lambda x: -x[1])[:top]:
    print("  %10d %5.1f%%  %s%s" % (c, 100.0 * c / tot, n, "  (wait)" if n in WAITS else ""))

if seq:
    # initcall order from the __initcall_start..__initcall_end table (prel32 entries)
    start, end = sym['__initcall_start'], sym['__initcall_end']
    for l in subprocess.check_output(['readelf', '-SW', vml]).decode().splitlines():
        p = l.replace('[ ', '[').split()
        if len(p) > 5 and p[0].startswith('['):
            try:
                vma, off, size = int(p[3], 16), int(p[4], 16), int(p[5], 16)
            except ValueError:
                continue
            if vma <= start < vma + size:
                break
    with open(vml, 'rb') as f:
        f.seek(off + start - vma)
        data = f.read(end - start)
    fns = [name(start + i + struct.unpack('<i', data[i:i + 4])[0]) for i in range(0, len(data), 4)]
    rows = sorted(((seq[i + 1] - seq[i], fns[i]) for i in range(min(len(seq) - 1, len(fns)))), reverse=True)
    print("initcalls (instructions until the next initcall starts, so async work "
          "such as initramfs unpacking lands in whichever initcall is running):")
    for d, n in rows[:top]:
        print("  %10d  %s" % (d, n))
