/*
 * lap: run commands one after the other and print how long they took, in nanoseconds,
 * for shell scripts whose own clock is too coarse (busybox sh in the v2 guest:
 * vm/payload-bench).
 *
 *   lap COMMAND [ARG]... [:: COMMAND [ARG]...]...
 *
 * Each command is timed from fork to wait (CLOCK_MONOTONIC), as bench/cycle.py times
 * Popen to wait. `::` separates commands; the pseudo-command `@wait` waits until every
 * process reparented to lap has exited (lap is a child subreaper: after `RUNTIME create`
 * exits, the container's init is lap's), so that
 *
 *   lap rt create -b B ID :: rt start ID :: @wait :: rt delete ID
 *
 * times a whole create -> start -> wait -> delete cycle, as cycle.py's cycle phase does.
 *
 * Prints one line: the total, then each step's time. The commands' stdout goes to lap's
 * stderr, so that lap's stdout holds only the numbers. Stops at the first command that
 * fails and exits with its status (128 + N when killed by signal N; 127 when it could not
 * be executed), printing nothing on stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_STEPS 16

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int status_code(int status) {
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* Run argv; its exit code (127 when it could not be run). */
static int run(char **argv) {
	pid_t pid = fork();
	if (pid < 0) {
		perror("lap: fork");
		return 127;
	}
	if (pid == 0) {
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execvp(argv[0], argv);
		fprintf(stderr, "lap: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("lap: waitpid");
			return 127;
		}
	return status_code(status);
}

/* Reap every child left (the orphans lap adopted), until there is none. */
static void wait_orphans(void) {
	while (wait(NULL) >= 0 || errno == EINTR)
		;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: lap COMMAND [ARG]... [:: COMMAND [ARG]...]...\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		perror("lap: PR_SET_CHILD_SUBREAPER");
	uint64_t steps[MAX_STEPS], total = 0;
	int n = 0;
	char **cmd = argv + 1;
	for (int i = 1; i <= argc; i++) {
		if (i < argc && strcmp(argv[i], "::"))
			continue;
		argv[i < argc ? i : argc] = NULL; /* argv[argc] is NULL already */
		if (!*cmd || n == MAX_STEPS) {
			fprintf(stderr, "lap: an empty command, or more than %d\n", MAX_STEPS);
			return 2;
		}
		uint64_t t0 = now_ns();
		int rc = 0;
		if (!strcmp(cmd[0], "@wait"))
			wait_orphans();
		else
			rc = run(cmd);
		steps[n] = now_ns() - t0;
		total += steps[n++];
		if (rc != 0)
			return rc;
		cmd = argv + i + 1;
	}
	printf("%llu", (unsigned long long)total);
	for (int i = 0; i < n; i++)
		printf(" %llu", (unsigned long long)steps[i]);
	printf("\n");
	return 0;
}
