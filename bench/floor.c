/*
 * floor: the bare system calls any runtime must make to run /bin/true in a container,
 * and nothing else (no config, state, /dev, hooks or security settings). `make bench`
 * builds it and times it beside the runtimes, the same way (Popen to wait), to show how
 * much of their time is the kernel's own work.
 *
 *   floor ROOTFS TRACEFILE [--netns] [--cgroup DIR]...
 *
 * A container: clone into new pid, ipc, uts and mount namespaces (and a network one with
 * --netns), join the cgroups, make the mount tree private, bind the rootfs onto itself,
 * mount proc, pivot_root, exec /bin/true, wait for it, and rmdir the cgroups. Each DIR
 * is created first (as a runtime's create does) and removed after the child exited (as
 * its delete does).
 *
 *   floor --exec PID TRACEFILE [--cgroup DIR]...
 *
 * An exec into the running container whose init is PID: pidfd_open it, setns(pidfd)
 * into its mount, pid, ipc, uts and network namespaces at once, fork (a pid namespace
 * takes only children), join the container's cgroups DIR..., exec /bin/true, wait.
 *
 * Cgroups, joined the cheapest way the kernel offers, as rt does: a DIR on cgroup2 at
 * birth, clone3(CLONE_INTO_CGROUP); a DIR on a cgroup v1 hierarchy by the child itself,
 * first thing, writing 0 (itself) into its `tasks` file, which a single-threaded process
 * may do without the global threadgroup lock (writing a pid into cgroup.procs takes it,
 * and waits for an RCU grace period after a quiet spell: 5-25 ms).
 *
 * TRACEFILE: where the steps go, written as rt's --trace writes them (one JSON line per
 * step, "cat":"floor"), so `rt trace summarize` reads both; `-` for no tracing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#define CGROUP2_MAGIC 0x63677270
#define MAX_CGROUPS 16

/* The kernel's struct clone_args (linux/sched.h), spelled out: that header and glibc's
 * sched.h do not mix everywhere. */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size, cgroup;
};

static int trace_fd = -1; /* -1: not tracing */
static uint64_t run_id;

static uint64_t now_ns(void) {
	if (trace_fd < 0)
		return 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void record(const char *name, const char *detail, uint64_t start, uint64_t end, long pid) {
	char line[512];
	static uint64_t n;
	if (trace_fd < 0)
		return;
	uint64_t span = run_id + (++n) + (uint64_t)pid * 7919;
	int len = snprintf(line, sizeof line,
		"{\"name\":\"%s\",\"cat\":\"floor\",\"ph\":\"X\",\"ts\":%llu,\"dur\":%llu,\"pid\":%ld,\"tid\":%ld,"
		"\"args\":{\"detail\":\"%s\",\"trace\":\"%016llx%016llx\",\"span\":\"%016llx\",\"parent\":\"%016llx\","
		"\"run\":\"%016llx\",\"start_ns\":%llu,\"end_ns\":%llu}}\n",
		name, (unsigned long long)(start / 1000), (unsigned long long)((end - start) / 1000), pid, pid,
		detail, (unsigned long long)run_id, (unsigned long long)run_id, (unsigned long long)span,
		(unsigned long long)run_id, (unsigned long long)run_id, (unsigned long long)start,
		(unsigned long long)end);
	if (len > 0 && write(trace_fd, line, (size_t)len) < 0)
		perror("floor: write trace");
}

static void die(const char *what) {
	fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
	_exit(1);
}

#define STEP(name, detail, call) do { \
	uint64_t t0_ = now_ns(); \
	if ((call) < 0) die(name); \
	record(name, detail, t0_, now_ns(), self); \
} while (0)

static int on_cgroup2(const char *dir) {
	struct statfs fs;
	return statfs(dir, &fs) == 0 && fs.f_type == CGROUP2_MAGIC;
}

/* A v1 cpuset takes no task until its cpus and mems are set: copy the parent's (whose
 * own may be empty too, when just made), as runtimes do. */
static int inherit_cpuset(const char *dir, int depth) {
	static const char *files[] = {"cpuset.cpus", "cpuset.mems"};
	for (int i = 0; i < 2; i++) {
		char path[4200], parent[4096], value[4096];
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return 0; /* not a cpuset hierarchy */
		ssize_t n = read(fd, value, sizeof value - 1);
		close(fd);
		if (n > 1 || depth > 8)
			continue;
		snprintf(parent, sizeof parent, "%s", dir);
		char *slash = strrchr(parent, '/');
		if (!slash)
			return -1;
		*slash = 0;
		if (inherit_cpuset(parent, depth + 1) < 0)
			return -1;
		snprintf(path, sizeof path, "%s/%s", parent, files[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd < 0 ? -1 : read(fd, value, sizeof value - 1);
		if (fd >= 0)
			close(fd);
		if (n <= 0)
			return -1;
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, value, (size_t)n) != n)
			return -1;
		close(fd);
	}
	return 0;
}

static int make_cgroup(const char *dir) {
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -1;
	return on_cgroup2(dir) ? 0 : inherit_cpuset(dir, 0);
}

/* rmdir, waiting briefly while the kernel still counts the exited child (EBUSY). */
static int remove_cgroup(const char *dir) {
	for (int i = 0; i < 1000; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -1;
		usleep(1000);
	}
	return -1;
}

/* The cgroups to join: the first cgroup2 DIR at birth (its directory fd for clone3), the
 * v1 ones by the child (their tasks files, opened now: an exec's child may no longer see
 * them once in the container's mount namespace). */
struct cgroups {
	const char *dirs[MAX_CGROUPS];
	int n;
	int into_fd; /* cgroup2 directory, or -1 */
	int tasks[MAX_CGROUPS]; /* v1 tasks, or -1 */
};

static void open_cgroups(struct cgroups *cg, long self) {
	cg->into_fd = -1;
	for (int i = 0; i < cg->n; i++) {
		cg->tasks[i] = -1;
		uint64_t t0 = now_ns();
		if (cg->into_fd < 0 && on_cgroup2(cg->dirs[i])) {
			cg->into_fd = open(cg->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (cg->into_fd < 0)
				die(cg->dirs[i]);
			record("cgroup-open", cg->dirs[i], t0, now_ns(), self);
			continue;
		}
		char path[4200];
		snprintf(path, sizeof path, "%s/tasks", cg->dirs[i]);
		cg->tasks[i] = open(path, O_WRONLY | O_CLOEXEC);
		if (cg->tasks[i] < 0)
			die(path);
		record("cgroup-open", path, t0, now_ns(), self);
	}
}

/* fork or clone with `flags` (namespaces), born in cg's cgroup2 directory if any. */
static long spawn(long flags, const struct cgroups *cg, long self) {
	uint64_t t0 = now_ns();
	long pid;
	if (cg->into_fd >= 0) {
		struct clone3_args args;
		memset(&args, 0, sizeof args);
		args.flags = (uint64_t)flags | CLONE_INTO_CGROUP;
		args.exit_signal = SIGCHLD;
		args.cgroup = (uint64_t)cg->into_fd;
		pid = syscall(SYS_clone3, &args, sizeof args);
		if (pid < 0)
			die("clone3(CLONE_INTO_CGROUP)");
		if (pid > 0)
			record("clone3-into-cgroup", flags ? "namespaces" : "", t0, now_ns(), self);
	} else {
		/* A fork-like clone: no new stack, the child runs on a copy of ours. */
		pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
		if (pid < 0)
			die("clone");
		if (pid > 0)
			record("clone", flags ? "namespaces" : "", t0, now_ns(), self);
	}
	return pid;
}

/* In the child: write itself into the v1 cgroups. */
static void join_v1(const struct cgroups *cg, long self) {
	for (int i = 0; i < cg->n; i++) {
		if (cg->tasks[i] < 0)
			continue;
		uint64_t c0 = now_ns();
		if (write(cg->tasks[i], "0", 1) != 1)
			die(cg->dirs[i]);
		record("cgroup-tasks", cg->dirs[i], c0, now_ns(), self);
	}
}

static int wait_child(long pid, long self) {
	int status;
	uint64_t w0 = now_ns();
	if (waitpid((pid_t)pid, &status, 0) < 0)
		die("waitpid");
	record("wait-exit", "", w0, now_ns(), self);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "floor: the child failed (status %d)\n", status);
		return 1;
	}
	return 0;
}

static void exec_true(long self) {
	uint64_t t0 = now_ns();
	record("exec", "/bin/true", t0, t0, self);
	char *argv[] = {"/bin/true", NULL};
	char *envp[] = {"PATH=/bin:/usr/bin", NULL};
	execve("/bin/true", argv, envp);
	die("execve /bin/true");
}

static void container_child(const char *rootfs, const struct cgroups *cg) {
	char proc[4096];
	long self = (long)syscall(SYS_getpid); /* 1: we are the pid namespace's init */
	join_v1(cg, self);
	STEP("mount-private", "/", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	STEP("mount", "rootfs", mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL));
	snprintf(proc, sizeof proc, "%s/proc", rootfs);
	STEP("mount", "/proc", mount("proc", proc, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL));
	STEP("chdir", "rootfs", chdir(rootfs));
	STEP("pivot-root", "", syscall(SYS_pivot_root, ".", "."));
	STEP("umount-old-root", "", umount2(".", MNT_DETACH));
	STEP("chdir", "/", chdir("/"));
	exec_true(self);
}

static int run_container(const char *rootfs, long flags, struct cgroups *cg) {
	long self = getpid();
	uint64_t start = now_ns();
	for (int i = 0; i < cg->n; i++)
		STEP("cgroup-mkdir", cg->dirs[i], make_cgroup(cg->dirs[i]));
	open_cgroups(cg, self);
	long pid = spawn(flags, cg, self);
	if (pid == 0)
		container_child(rootfs, cg);
	int rc = wait_child(pid, self);
	for (int i = 0; i < cg->n; i++)
		STEP("cgroup-rmdir", cg->dirs[i], remove_cgroup(cg->dirs[i]));
	record("floor", "", start, now_ns(), self);
	return rc;
}

static int run_exec(long target, struct cgroups *cg) {
	long self = getpid();
	uint64_t start = now_ns();
	int pidfd;
	STEP("pidfd-open", "", pidfd = (int)syscall(SYS_pidfd_open, (pid_t)target, 0));
	open_cgroups(cg, self);
	STEP("setns", "mnt, pid, ipc, uts, net",
	     setns(pidfd, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET));
	close(pidfd);
	long pid = spawn(0, cg, self);
	if (pid == 0) {
		long child = (long)syscall(SYS_getpid);
		join_v1(cg, child);
		exec_true(child);
	}
	int rc = wait_child(pid, self);
	record("floor-exec", "", start, now_ns(), self);
	return rc;
}

static void usage(void) {
	fprintf(stderr, "usage: floor ROOTFS TRACEFILE [--netns] [--cgroup DIR]...\n"
	                "       floor --exec PID TRACEFILE [--cgroup DIR]...\n"
	                "TRACEFILE - for no tracing\n");
	exit(2);
}

int main(int argc, char **argv) {
	if (argc < 3)
		usage();
	int exec_mode = !strcmp(argv[1], "--exec");
	if (exec_mode && argc < 4)
		usage();
	const char *target = argv[exec_mode ? 2 : 1];
	const char *tracefile = argv[exec_mode ? 3 : 2];
	long flags = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS;
	struct cgroups cg = {.n = 0, .into_fd = -1};
	for (int i = exec_mode ? 4 : 3; i < argc; i++) {
		if (!strcmp(argv[i], "--netns") && !exec_mode)
			flags |= CLONE_NEWNET;
		else if (!strcmp(argv[i], "--cgroup") && i + 1 < argc && cg.n < MAX_CGROUPS)
			cg.dirs[cg.n++] = argv[++i];
		else {
			fprintf(stderr, "floor: unknown argument %s\n", argv[i]);
			usage();
		}
	}
	if (strcmp(tracefile, "-")) {
		int fd = open(tracefile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0)
			die(tracefile);
		trace_fd = fd;
		run_id = now_ns() ^ ((uint64_t)getpid() << 40);
	}
	if (exec_mode) {
		char *end;
		long pid = strtol(target, &end, 10);
		if (*end || pid <= 0)
			usage();
		return run_exec(pid, &cg);
	}
	return run_container(target, flags, &cg);
}
