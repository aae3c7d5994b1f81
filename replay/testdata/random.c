// Prints 16 random bytes from getrandom(2): a replay must print production's.
#include <stdio.h>
#include <sys/random.h>

int main(void)
{
	unsigned char b[16];
	if (getrandom(b, sizeof b, 0) != sizeof b) {
		perror("getrandom");
		return 1;
	}
	for (int i = 0; i < 16; i++)
		printf("%02x", b[i]);
	printf("\n");
	return 0;
}
