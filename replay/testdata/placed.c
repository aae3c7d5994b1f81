// Reads a file in ways that move its position behind the replay's back: two reads, a
// seek back to the start, a read, and two positioned reads of the start. Prints what
// each got, space-separated.
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static void show(ssize_t n, const char *buf)
{
	printf("%.*s ", n > 0 ? (int)n : 0, buf);
}

int main(int argc, char **argv)
{
	char buf[4];
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (argc != 2 || fd < 0) {
		perror("open");
		return 1;
	}
	show(read(fd, buf, 4), buf);
	show(read(fd, buf, 4), buf);
	lseek(fd, 0, SEEK_SET);
	show(read(fd, buf, 4), buf);
	show(pread(fd, buf, 4, 0), buf);
	show(pread(fd, buf, 4, 0), buf);
	printf("\n");
	return 0;
}
