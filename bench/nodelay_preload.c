/*
 * LD_PRELOAD shim used by bench/run.sh for the *upstream* demo server only:
 * sets TCP_NODELAY on every accepted socket.
 *
 * Why: the demo server (rmcp's Streamable HTTP service under axum::serve)
 * answers tools/call as a short SSE stream written in several small writes.
 * Without TCP_NODELAY, Nagle's algorithm holds the second write until the
 * client ACKs the first, and the client delays that ACK by ~40 ms, so every
 * request takes ~44 ms and the "trivial upstream" measures a TCP timer, not
 * MCP. Once the demo server sets TCP_NODELAY itself this shim is a no-op.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int s) {
    int one = 1;
    if (s >= 0) {
        /* Fails harmlessly on non-TCP sockets. */
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int s = real(fd, addr, len, flags);
    nodelay(s);
    return s;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int s = real(fd, addr, len);
    nodelay(s);
    return s;
}
