/*
 * floor: the bare system calls any runtime must make to run /bin/true in a container,
 * and nothing else (no config, state, /dev, hooks or security settings): clone into new
 * pid, ipc, uts and mount namespaces (and a network one with --netns), join cgroups,
 * make the mount tree private, bind the rootfs onto itself, mount proc, pivot_root and
 * exec. `make bench` builds and runs it next to rt to show how much of rt's time is the
 * kernel's own work.
 *
 * It writes its steps as rt's --trace does (one JSON line per step, "cat":"floor"), so
 * `rt trace summarize` reads both.
 *
 *   floor ROOTFS TRACEFILE [--netns] [--cgroup DIR]...
 *
 * Each DIR is created, the child is moved into it, and it is removed after the child
 * exited (as a runtime's create and delete do).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int trace_fd = -1;
static uint64_t run_id;

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void record(const char *name, const char *detail, uint64_t start, uint64_t end, long pid) {
	char line[512];
	static uint64_t n;
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

#define STEP(name, detail, call) do { \
	uint64_t t0_ = now_ns(); \
	if ((call) < 0) die(name); \
	record(name, detail, t0_, now_ns(), self); \
} while (0)

static void child(const char *rootfs, int go) {
	char byte, proc[4096];
	long self = 0;
	/* Wait until the parent has moved us into the cgroups, as a runtime's init does. */
	if (read(go, &byte, 1) != 1)
		die("read go");
	close(go);
	if (read(STDIN_FILENO, &byte, 0) < 0) /* keep stdin as it is */
		die("stdin");
	self = (long)syscall(SYS_getpid); /* 1: we are the pid namespace's init */
	STEP("mount-private", "/", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	STEP("mount", "rootfs", mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL));
	snprintf(proc, sizeof proc, "%s/proc", rootfs);
	STEP("mount", "/proc", mount("proc", proc, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL));
	STEP("chdir", "rootfs", chdir(rootfs));
	STEP("pivot-root", "", syscall(SYS_pivot_root, ".", "."));
	STEP("umount-old-root", "", umount2(".", MNT_DETACH));
	STEP("chdir", "/", chdir("/"));
	uint64_t t0 = now_ns();
	record("exec", "/bin/true", t0, t0, self);
	char *argv[] = {"/bin/true", NULL};
	char *envp[] = {"PATH=/bin:/usr/bin", NULL};
	execve("/bin/true", argv, envp);
	die("execve /bin/true");
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: floor ROOTFS TRACEFILE [--netns] [--cgroup DIR]...\n");
		return 2;
	}
	const char *rootfs = argv[1];
	long flags = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS;
	const char *cgroups[16];
	int ncg = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--netns"))
			flags |= CLONE_NEWNET;
		else if (!strcmp(argv[i], "--cgroup") && i + 1 < argc && ncg < 16)
			cgroups[ncg++] = argv[++i];
		else {
			fprintf(stderr, "floor: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	trace_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (trace_fd < 0)
		die(argv[2]);
	run_id = now_ns() ^ ((uint64_t)getpid() << 40);
	long self = getpid();
	uint64_t start = now_ns();
	int go[2];
	if (pipe2(go, O_CLOEXEC) < 0)
		die("pipe2");
	for (int i = 0; i < ncg; i++)
		STEP("cgroup-mkdir", cgroups[i],
		     (mkdir(cgroups[i], 0755) < 0 && errno != EEXIST) ? -1 : inherit_cpuset(cgroups[i], 0));
	uint64_t t0 = now_ns();
	/* A fork-like clone: no new stack, the child runs on a copy of ours. */
	long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		die("clone");
	if (pid == 0) {
		close(go[1]);
		child(rootfs, go[0]);
	}
	record("clone", "namespaces", t0, now_ns(), self);
	close(go[0]);
	char text[32];
	int len = snprintf(text, sizeof text, "%ld", pid);
	for (int i = 0; i < ncg; i++) {
		char procs[4096];
		snprintf(procs, sizeof procs, "%s/cgroup.procs", cgroups[i]);
		uint64_t c0 = now_ns();
		int fd = open(procs, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, text, (size_t)len) != len)
			die(procs);
		close(fd);
		record("cgroup-procs", cgroups[i], c0, now_ns(), self);
	}
	if (write(go[1], "g", 1) != 1)
		die("write go");
	close(go[1]);
	int status;
	uint64_t w0 = now_ns();
	if (waitpid((pid_t)pid, &status, 0) < 0)
		die("waitpid");
	record("wait-exit", "", w0, now_ns(), self);
	for (int i = 0; i < ncg; i++)
		STEP("cgroup-rmdir", cgroups[i], rmdir(cgroups[i]));
	record("floor", "", start, now_ns(), self);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "floor: the child failed (status %d)\n", status);
		return 1;
	}
	return 0;
}
