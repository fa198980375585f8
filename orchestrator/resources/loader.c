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
 *   loader [--report FILE] [--seccomp FILTER] [--call SYMBOL] LIB
 *
 * With --seccomp (verify-load --kernel X.Y), before dlopen the loader sets PR_SET_NO_NEW_PRIVS
 * and installs FILTER, a classic BPF program written by orchestrator/seccomp.py that allows
 * only the system calls kernel X.Y had and answers the others with SECCOMP_RET_TRAP (the
 * kernel's Documentation/userspace-api/seccomp_filter.rst, seccomp(2)). No privilege is
 * needed. The SIGSYS handler makes each denied call return -ENOSYS, as the old kernel would,
 * reports the first denial of each number at once ("denied") and the loader reports how often
 * each was denied ("denied-count") before it ends.
 *
 * Exit status: 0 loaded (and the call returned 0), 10 refused by the dynamic loader,
 * 11 SYMBOL missing, 12 the call returned non-zero, 13 the filter could not be installed
 * (no seccomp in this kernel or container), 64 usage.
 *
 * With --report, what happened is written line by line ("key<TAB>value") to FILE with
 * write(2) as it happens, so a crash in the library cannot lose what came before it; the
 * library's own stdout/stderr are left alone for the caller to capture. Without --report,
 * the same lines go to stderr prefixed with "loader: ".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <ucontext.h>
#include <unistd.h>

enum { LOADED = 0, REFUSED = 10, NO_SYMBOL = 11, CALL_FAILED = 12, NO_FILTER = 13, USAGE = 64 };

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

/* -- the kernel floor (--seccomp) ------------------------------------------------------- */
enum { MAX_NR = 1024, MAX_INSNS = 4096 /* BPF_MAXINSNS */ };
static unsigned long denied[MAX_NR]; /* how often each system call number was denied */

/* "NUMBER" or "NUMBER COUNT" in decimal; no stdio, as it also runs in the signal handler. */
static void report_numbers(const char *key, unsigned long number, unsigned long count) {
    char text[48], *end = text + sizeof text - 1, *p = end;
    *p = '\0';
    if (count) {
        do
            *--p = (char)('0' + count % 10);
        while ((count /= 10) != 0);
        *--p = ' ';
    }
    do
        *--p = (char)('0' + number % 10);
    while ((number /= 10) != 0);
    report(key, p);
}

/* A denied call: count it, and make it return -ENOSYS (seccomp(2), SECCOMP_RET_TRAP). */
static void on_sigsys(int signo, siginfo_t *info, void *context) {
    (void)signo;
    int saved = errno;
    ucontext_t *uc = context;
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
#elif defined(__aarch64__)
    uc->uc_mcontext.regs[0] = (unsigned long long)-ENOSYS;
#else
#error "no kernel floor for this architecture"
#endif
    unsigned long nr = (unsigned long)info->si_syscall;
    if (nr < MAX_NR && __sync_fetch_and_add(&denied[nr], 1) == 0)
        report_numbers("denied", nr, 0);
    errno = saved;
}

static void report_denied(void) {
    for (unsigned long nr = 0; nr < MAX_NR; nr++)
        if (denied[nr])
            report_numbers("denied-count", nr, denied[nr]);
}

/* Install the BPF program in PATH; on failure report why ("nofilter") and return -1. */
static int install_filter(const char *path) {
    static struct sock_filter code[MAX_INSNS];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t size = fd < 0 ? -1 : read(fd, code, sizeof code);
    if (fd >= 0)
        close(fd);
    if (size <= 0 || size % (ssize_t)sizeof code[0] != 0) {
        report("nofilter", "the filter file cannot be read or is not a BPF program");
        return -1;
    }
    struct sock_fprog program = {.len = (unsigned short)(size / (ssize_t)sizeof code[0]),
                                 .filter = code};
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigsys;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSYS, &action, NULL) != 0) {
        report("nofilter", strerror(errno));
        return -1;
    }
    /* Without privilege, a filter may only be installed after PR_SET_NO_NEW_PRIVS. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
        report("nofilter", strerror(errno)); /* EINVAL: no CONFIG_SECCOMP_FILTER */
        return -1;
    }
    report("filtered", "");
    return 0;
}

static int usage(void) {
    fputs("usage: loader [--report FILE] [--seccomp FILTER] [--call SYMBOL] LIB\n", stderr);
    return USAGE;
}

int main(int argc, char **argv) {
    const char *call = NULL, *report_path = NULL, *filter = NULL, *lib = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--call") == 0 && i + 1 < argc)
            call = argv[++i];
        else if (strcmp(argv[i], "--report") == 0 && i + 1 < argc)
            report_path = argv[++i];
        else if (strcmp(argv[i], "--seccomp") == 0 && i + 1 < argc)
            filter = argv[++i];
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
    if (filter && install_filter(filter) != 0)
        return NO_FILTER;

    void *handle = dlopen(lib, RTLD_NOW);
    if (handle == NULL) {
        const char *message = dlerror();
        report("refused", message ? message : "dlopen failed without a message");
        report_denied();
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
            report_denied();
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
    report_denied();
    report("done", "");
    return status; /* exit() runs the library's destructors: a crash there is reported too */
}
