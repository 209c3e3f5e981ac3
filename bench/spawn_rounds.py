#!/usr/bin/env python3
"""Time per command of each NAME=COMMAND (a shell-free argv, split on
spaces), started as fresh processes with posix_spawn and waited for, RUNS
times per round, rounds alternating the order. Prints each round, then
each command's median and spread in ms.

Usage: bench/spawn_rounds.py ROUNDS RUNS NAME=COMMAND...
"""
import os
import statistics
import sys
import time


def per_command(argv, runs):
    devnull = os.open(os.devnull, os.O_RDWR)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
    start = time.perf_counter()
    for _ in range(runs):
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {status}")
    took = (time.perf_counter() - start) * 1000 / runs
    os.close(devnull)
    return took


def main():
    rounds, runs = int(sys.argv[1]), int(sys.argv[2])
    commands = [a.split("=", 1) for a in sys.argv[3:]]
    times = {name: [] for name, _ in commands}
    for r in range(rounds):
        order = commands if r % 2 == 0 else list(reversed(commands))
        for name, cmd in order:
            ms = per_command(cmd.split(), runs)
            times[name].append(ms)
            print(f"round {r + 1} {name:22s} {ms:7.3f} ms", flush=True)
    print()
    for name, _ in commands:
        t = times[name]
        print(f"{name:22s} median {statistics.median(t):7.3f} ms  spread {min(t):.3f}-{max(t):.3f} ms")
    return times


if __name__ == "__main__":
    main()
