// The timeout tweaks' workload: it waits for its peer (or a pipe) with a timeout and says
// whether the data came in time.
//   timeouts poll HOST PORT MS       poll up to 3 times with MS, then read
//   timeouts rcvtimeo HOST PORT MS   SO_RCVTIMEO of MS, then one read
//   timeouts pipe MS                 a child writes to a pipe after 500 ms; poll it with MS
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int dial(const char *host, const char *port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("connect");
		exit(4);
	}
	return s;
}

static int show(int fd)
{
	char buf[128];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		printf("timed out\n");
		return 3;
	}
	if (n <= 0) {
		printf("no data (%zd)\n", n);
		return 5;
	}
	buf[n] = 0;
	printf("ready: %s", buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "poll") == 0) {
		int s = dial(argv[2], argv[3]);
		struct pollfd p = {.fd = s, .events = POLLIN};
		for (int i = 0; i < 3; i++) {
			int r = poll(&p, 1, atoi(argv[4]));
			if (r > 0)
				return show(s);
			printf("timed out\n");
		}
		return 3;
	}
	if (argc == 5 && strcmp(argv[1], "rcvtimeo") == 0) {
		int s = dial(argv[2], argv[3]);
		int ms = atoi(argv[4]);
		struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000};
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		return show(s);
	}
	if (argc == 3 && strcmp(argv[1], "pipe") == 0) {
		int fds[2];
		if (pipe(fds) < 0)
			return 1;
		pid_t child = fork();
		if (child == 0) {
			usleep(500000);
			write(fds[1], "late\n", 5);
			_exit(0);
		}
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		int r = poll(&p, 1, atoi(argv[2]));
		kill(child, 9);
		waitpid(child, NULL, 0);
		if (r > 0)
			return show(fds[0]);
		printf("timed out\n");
		return 3;
	}
	fprintf(stderr, "usage: timeouts poll|rcvtimeo HOST PORT MS | timeouts pipe MS\n");
	return 2;
}
