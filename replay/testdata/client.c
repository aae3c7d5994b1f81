// A settlement client, the C program the replay tests record and replay: it takes a
// request from its peer over TCP, a rate from a file, and sends the peer the result.
// Every failure has its own message and exit status, so that an injected error shows
// which path the program took. CLIENT_TIMING=1 also prints how long the request took.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static int fail(const char *what, int status)
{
	fprintf(stderr, "client: %s: %s\n", what, strerror(errno));
	return status;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: client HOST PORT RATEFILE\n");
		return 2;
	}
	long long start = now_ms();
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail("socket", 3);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
		return fail("connecting", 4);

	char req[256];
	ssize_t n = read(s, req, sizeof req - 1);
	if (n < 0)
		return fail("reading the request", 5);
	if (n == 0) {
		fprintf(stderr, "client: the peer closed before sending a request\n");
		return 6;
	}
	req[n] = 0;
	long long took = now_ms() - start;
	int amount = 0;
	if (sscanf(req, "amount=%d", &amount) != 1) {
		fprintf(stderr, "client: bad request %s", req);
		return 7;
	}

	char rate[64] = {0};
	int f = open(argv[3], O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return fail("opening the rate file", 8);
	if (read(f, rate, sizeof rate - 1) < 0)
		return fail("reading the rate file", 9);
	close(f);

	char out[128];
#ifdef CHANGED
	/* The "fixed" build: three decimals, which the peer never saw. */
	int len = snprintf(out, sizeof out, "result=%.3f\n", amount * atof(rate));
#else
	int len = snprintf(out, sizeof out, "result=%.2f\n", amount * atof(rate));
#endif
	if (write(s, out, len) != len)
		return fail("sending the result", 10);
	char ack[16] = {0};
	if (read(s, ack, sizeof ack - 1) <= 0 || strncmp(ack, "ok", 2) != 0) {
		fprintf(stderr, "client: no ack\n");
		return 11;
	}
	close(s);
	printf("settled amount=%d %s", amount, out);
	if (getenv("CLIENT_TIMING"))
		printf("request took %lld ms\n", took);
	return 0;
}
