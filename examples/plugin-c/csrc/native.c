/* C part of the plugin. Built against a new glibc's headers, fcntl() becomes fcntl64@GLIBC_2.28
 * and open() of a large file may too; built by zig for 2.17 it must stay at GLIBC_2.2.5. */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int native_flags(void) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) return -1;
    int flags = fcntl(fd, F_GETFD);
    close(fd);
    printf("example-plugin-c: fcntl said %d\n", flags);
    fflush(stdout);
    return flags < 0 ? -1 : 0;
}
