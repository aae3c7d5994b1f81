// A one-request server for the replay tests: it accepts one connection on PORT, reads the
// request, answers it, and says who it served.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: server PORT\n");
		return 2;
	}
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 1) < 0) {
		perror("listen");
		return 3;
	}
	struct sockaddr_in peer;
	socklen_t plen = sizeof peer;
	int c = accept4(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
	if (c < 0) {
		perror("accept");
		return 4;
	}
	char req[128] = {0};
	ssize_t n = read(c, req, sizeof req - 1);
	if (n <= 0) {
		perror("read");
		return 5;
	}
	char resp[160];
	int len = snprintf(resp, sizeof resp, "echo %s", req);
	write(c, resp, len);
	close(c);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
	printf("served %s:%d: %s", ip, ntohs(peer.sin_port), req);
	return 0;
}
