"""What the benchmark scripts measure the same way: a process's CPU seconds and
peak RSS from /proc, and nearest-rank percentiles."""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_usage(pid: int) -> tuple:
    """(cpu seconds user+sys, peak RSS kB) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may contain spaces: fields start after the last ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, hwm


def percentile(sorted_values: list, p: float) -> float:
    """Nearest rank of an ascending list."""
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[i]
