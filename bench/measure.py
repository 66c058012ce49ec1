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


def proc_cpu_precise(pid: int) -> float:
    """CPU seconds of a live process's threads, to the nanosecond: the sum
    of each thread's time on a CPU (/proc/<pid>/task/*/schedstat), where
    /proc/<pid>/stat counts in 10 ms ticks (an idle connector's 20 s is one
    or two ticks). Threads that exited are not counted: for windows over
    which a process keeps its threads. Falls back to `proc_usage` where the
    kernel has no schedstat."""
    total, read = 0, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
            read += 1
        except FileNotFoundError:
            pass  # the thread ended between listing and reading
    return total / 1e9 if read else proc_usage(pid)[0]


def percentile(sorted_values: list, p: float) -> float:
    """Nearest rank of an ascending list."""
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[i]
