// udpecho: a minimal UDP echo server on 127.0.0.1, the host-local reference for
// `invoke bench echo`. It answers each datagram with its own bytes (RFC 862), so the load
// generator can be measured against a server that is never the bottleneck.
//
//   udpecho [PORT]     (0 or none: an ephemeral port) prints "udpecho: PORT" once bound,
//                      then echoes until SIGTERM/SIGINT or until stdin closes.
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("udpecho: socket");
        return 1;
    }
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);      // loopback only
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("udpecho: bind 127.0.0.1");
        return 1;
    }
    socklen_t len = sizeof(addr);
    getsockname(fd, (struct sockaddr *)&addr, &len);
    printf("udpecho: %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    static unsigned char buf[65536];
    struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (fds[1].revents)             // stdin closed: the parent is gone
            return 0;
        // Drain what is queued before polling again.
        for (;;) {
            struct sockaddr_in peer;
            socklen_t plen = sizeof(peer);
            ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT,
                                 (struct sockaddr *)&peer, &plen);
            if (n < 0)
                break;
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
        }
    }
}
