#!/usr/bin/env python3
"""Derive the older-style seccomp profiles the tests use from docker-20.10-default.json.

Docker's default profiles before 20.10 listed none of the system calls Linux gained after
their release, and their default action was an errno: a runtime that makes any of those
calls after installing the filter fails there (close_range, Linux 5.9, is the usual one).
The originals are not copied here; these are 20.10's profile without what did not exist
for them, so they deny at least what the old ones denied among the calls a runtime makes.

  docker-19.03-like.json  minus the calls of Linux 5.1 and later (19.03: July 2019, 5.2)
  docker-17.06-like.json  also minus statx, pkey_*, rseq, io_pgetevents and membarrier,
                          which Docker's profile only gained from 2018 on

Run from this directory: python3 derive-profiles.py
"""
import json

SINCE_5_1 = {
    "io_uring_setup", "io_uring_enter", "io_uring_register", "pidfd_send_signal",
    "clone3", "pidfd_open", "openat2", "pidfd_getfd", "faccessat2", "close_range",
    "process_madvise", "epoll_pwait2", "mount_setattr", "landlock_create_ruleset",
    "landlock_add_rule", "landlock_restrict_self", "quotactl_fd", "memfd_secret",
    "process_mrelease", "futex_waitv", "set_mempolicy_home_node", "cachestat",
    "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait", "futex_requeue",
    "statmount", "listmount", "lsm_get_self_attr", "lsm_set_self_attr",
    "lsm_list_modules", "mseal",
}
LATER_IN_DOCKER = {"statx", "pkey_mprotect", "pkey_alloc", "pkey_free", "rseq",
                   "io_pgetevents", "membarrier"}


def without(profile, drop):
    out = json.loads(json.dumps(profile))
    syscalls = []
    for rule in out["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in drop]
        if rule["names"]:
            syscalls.append(rule)
    out["syscalls"] = syscalls
    return out


def main():
    with open("docker-20.10-default.json") as f:
        base = json.load(f)
    for name, drop in [("docker-19.03-like.json", SINCE_5_1),
                       ("docker-17.06-like.json", SINCE_5_1 | LATER_IN_DOCKER)]:
        with open(name, "w") as f:
            json.dump(without(base, drop), f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
