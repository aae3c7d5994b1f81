// Reads a file while a 1 ms interval timer interrupts it over and over (SA_RESTART): each
// interruption withdraws a pending seccomp notification and the kernel restarts the read.
// The replay must still serve each recorded read once.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t ticks;

static void tick(int sig) { (void)sig; ticks++; }

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: sigread FILE\n");
		return 2;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = tick;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 1000}, {0, 1000}};
	setitimer(ITIMER_REAL, &it, NULL);
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	char buf[64];
	ssize_t n;
	int reads = 0;
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		fwrite(buf, 1, n, stdout);
		reads++;
	}
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	printf("\n%d reads, last %zd, interrupted %s\n", reads, n, ticks > 10 ? "many times" : "rarely");
	return 0;
}
