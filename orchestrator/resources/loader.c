/*
 * The loader verify-load runs under a root's own glibc (ROOT/.../ld.so --library-path ...):
 * dlopen(LIB, RTLD_NOW) and, with --call SYMBOL, call `int SYMBOL(void)`.
 *
 * Built by zig for the oldest glibc of its target (2.17 on x86_64), so that any root from
 * there up can run it. It uses only dlopen/dlsym/dlerror/dl_iterate_phdr and stdio.
 *
 * After dlopen it reports every object in the process twice: as the loader named it
 * ("object", dl_iterate_phdr) and as the kernel mapped it ("mapped", the real path of each
 * executable mapping in /proc/self/maps, symlinks resolved). The caller fails the run when
 * one of them lies outside the root: a symlink in the root that climbs out, or a folder of
 * the host that ld.so searched, would otherwise pass for the root's own glibc.
 *
 *   loader [--report FILE] [--call SYMBOL] LIB
 *
 * Exit status: 0 loaded (and the call returned 0), 10 refused by the dynamic loader,
 * 11 SYMBOL missing, 12 the call returned non-zero, 64 usage.
 *
 * With --report, what happened is written line by line ("key<TAB>value") to FILE with
 * write(2) as it happens, so a crash in the library cannot lose what came before it; the
 * library's own stdout/stderr are left alone for the caller to capture. Without --report,
 * the same lines go to stderr prefixed with "loader: ".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { LOADED = 0, REFUSED = 10, NO_SYMBOL = 11, CALL_FAILED = 12, USAGE = 64 };

static int report_fd = -1;

static void write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t done = write(fd, data, size);
        if (done <= 0)
            return;
        data += done;
        size -= (size_t)done;
    }
}

/* One "key<TAB>value" line; newlines in VALUE (dlerror text) become spaces. */
static void report(const char *key, const char *value) {
    char line[8192];
    size_t used = 0;
    int fd = report_fd >= 0 ? report_fd : STDERR_FILENO;
    if (report_fd < 0) {
        memcpy(line, "loader: ", 8);
        used = 8;
    }
    for (const char *p = key; *p && used < sizeof line - 2; p++)
        line[used++] = *p;
    line[used++] = '\t';
    for (const char *p = value ? value : ""; *p && used < sizeof line - 1; p++)
        line[used++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
    line[used++] = '\n';
    write_all(fd, line, used);
}

/* Every object in the process after dlopen: the caller checks each came from the root. */
static int list_object(struct dl_phdr_info *object, size_t size, void *unused) {
    (void)size;
    (void)unused;
    if (object->dlpi_name && object->dlpi_name[0])
        report("object", object->dlpi_name);
    return 0;
}

/* Every file mapped executable, by the real path the kernel shows in /proc/self/maps. */
static void list_mappings(void) {
    FILE *maps = fopen("/proc/self/maps", "re");
    if (maps == NULL) {
        report("maps-unavailable", "/proc/self/maps cannot be read (is /proc mounted?)");
        return;
    }
    char line[8192], last[8192] = "";
    while (fgets(line, sizeof line, maps) != NULL) {
        char perms[8];
        size_t length = strlen(line);
        if (length > 0 && line[length - 1] != '\n' && !feof(maps)) {
            int c; /* longer than any path can be: skip the rest of the line */
            while ((c = fgetc(maps)) != EOF && c != '\n')
                ;
            continue;
        }
        if (sscanf(line, "%*s %7s", perms) != 1 || strchr(perms, 'x') == NULL)
            continue;
        char *path = strchr(line, '/'); /* address, perms, offset, dev, inode hold none */
        if (path == NULL)
            continue;
        path[strcspn(path, "\n")] = '\0';
        if (strcmp(path, last) == 0)
            continue;
        snprintf(last, sizeof last, "%s", path);
        report("mapped", path);
    }
    fclose(maps);
}

static int usage(void) {
    fputs("usage: loader [--report FILE] [--call SYMBOL] LIB\n", stderr);
    return USAGE;
}

int main(int argc, char **argv) {
    const char *call = NULL, *report_path = NULL, *lib = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--call") == 0 && i + 1 < argc)
            call = argv[++i];
        else if (strcmp(argv[i], "--report") == 0 && i + 1 < argc)
            report_path = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] == '-' && argv[i][2] != '\0')
            return usage();
        else if (lib == NULL)
            lib = argv[i];
        else
            return usage();
    }
    if (lib == NULL)
        return usage();
    if (report_path) {
        report_fd = open(report_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (report_fd < 0) {
            perror(report_path);
            return USAGE;
        }
    }
    /* Line-buffered: the library shares this stdio, so its printf lines survive a crash. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    report("start", "");

    void *handle = dlopen(lib, RTLD_NOW);
    if (handle == NULL) {
        const char *message = dlerror();
        report("refused", message ? message : "dlopen failed without a message");
        return REFUSED;
    }
    report("loaded", lib);
    dl_iterate_phdr(list_object, NULL);
    list_mappings();

    int status = LOADED;
    if (call) {
        dlerror();
        void *symbol = dlsym(handle, call);
        const char *message = dlerror();
        if (message != NULL || symbol == NULL) {
            report("nosymbol", message ? message : "the symbol's address is NULL");
            fflush(NULL);
            return NO_SYMBOL;
        }
        int (*function)(void);
        *(void **)&function = symbol; /* POSIX's way from object to function pointer */
        report("calling", call);
        int returned = function();
        fflush(NULL);
        char text[32];
        snprintf(text, sizeof text, "%d", returned);
        report("returned", text);
        if (returned != 0)
            status = CALL_FAILED;
    }
    fflush(NULL);
    report("done", "");
    return status; /* exit() runs the library's destructors: a crash there is reported too */
}
