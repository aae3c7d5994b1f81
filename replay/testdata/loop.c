// The replay benchmarks' workload: N calls of one syscall, timed by the program itself so
// that process start-up is not in the figure. Prints the nanoseconds per call.
//   loop read PATH N   read(fd, buf, 64) N times on PATH opened once
//   loop getppid N     N getppid calls (a syscall no filter stops)
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	char buf[64];
	long long t0, t1;
	long n;

	if (argc == 4 && strcmp(argv[1], "read") == 0) {
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0) {
			perror("open");
			return 1;
		}
		n = atol(argv[3]);
		t0 = now();
		for (long i = 0; i < n; i++)
			if (read(fd, buf, sizeof buf) != sizeof buf) {
				perror("read");
				return 1;
			}
		t1 = now();
	} else if (argc == 3 && strcmp(argv[1], "getppid") == 0) {
		n = atol(argv[2]);
		t0 = now();
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
		t1 = now();
	} else {
		fprintf(stderr, "usage: loop read PATH N | loop getppid N\n");
		return 2;
	}
	printf("%.1f\n", n > 0 ? (double)(t1 - t0) / n : 0.0);
	return 0;
}
