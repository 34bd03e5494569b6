/*
 * hsbench: the handshake load client of staplegate's TLS benchmarks (bench/tls_bench.py,
 * bench/ab_trees.py). Each iteration opens a new TCP connection and completes a full TLS
 * handshake: the client keeps no session cache and takes no tickets, so nothing resumes.
 * With -S it sends status_request and counts the handshakes that came back with an OCSP
 * staple, so a run also shows whether the proxy under test stapled throughout.
 *
 * Built by the bench itself (tls_bench.build_hsbench) with
 *     cc -O2 -o hsbench bench/hsbench/hsbench.c -lssl -lcrypto
 * which needs a C compiler and OpenSSL's headers (Debian: gcc libssl-dev).
 *
 * Usage: hsbench -p PORT [-H ADDR] [-s SNI] [-t SECONDS] [-P PROCS] [-S] [-2] [-r PATH]
 *     -H ADDR   IPv4 address to connect to (127.0.0.1)
 *     -s SNI    server name sent in the ClientHello (www.example.com)
 *     -t SECS   how long to run (10)
 *     -P PROCS  load processes forked, each looping on its own (1)
 *     -S        ask for the OCSP staple (status_request)
 *     -2        cap the protocol at TLS 1.2 (without it: TLS 1.3 only)
 *     -r PATH   after each handshake, "GET PATH" with Connection: close, read to EOF
 * Output: one JSON line with the handshake count, handshakes per second, the stapled
 * fraction and the error count.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Monotonic seconds: the run length must not follow wall-clock steps. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *sni = "www.example.com", *path = NULL;
    int port = 0, procs = 1, status = 0, tls12 = 0, opt;
    double secs = 10;
    while ((opt = getopt(argc, argv, "H:p:s:t:P:S2r:")) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 's': sni = optarg; break;
        case 't': secs = atof(optarg); break;
        case 'P': procs = atoi(optarg); break;
        case 'S': status = 1; break;
        case '2': tls12 = 1; break;
        case 'r': path = optarg; break;
        default: fprintf(stderr, "bad option\n"); return 2;
        }
    }
    if (!port) { fprintf(stderr, "-p PORT required\n"); return 2; }
    signal(SIGPIPE, SIG_IGN);
    int fds[2];
    if (pipe(fds)) return 2;
    for (int i = 0; i < procs; i++) {
        if (fork() == 0) {
            /* Each child: its own context, no session reuse, so every handshake is full. */
            SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
            SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
            if (tls12) SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
            else SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
            struct sockaddr_in sa = {0};
            sa.sin_family = AF_INET;
            sa.sin_port = htons(port);
            inet_pton(AF_INET, host, &sa.sin_addr);
            long ok = 0, stapled = 0, err = 0;
            char req[512], buf[65536];
            if (path) snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, sni);
            double end = now() + secs;
            while (now() < end) {
                int s = socket(AF_INET, SOCK_STREAM, 0);
                int one = 1;
                setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                struct timeval tv = {5, 0};
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                if (connect(s, (struct sockaddr *)&sa, sizeof(sa))) { err++; close(s); usleep(1000); continue; }
                SSL *ssl = SSL_new(ctx);
                SSL_set_fd(ssl, s);
                SSL_set_tlsext_host_name(ssl, sni);
                if (status) SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
                if (SSL_connect(ssl) == 1) {
                    int good = 1;
                    if (status) {
                        const unsigned char *p = NULL;
                        if (SSL_get_tlsext_status_ocsp_resp(ssl, &p) > 0 && p) stapled++;
                    }
                    if (path) {
                        if (SSL_write(ssl, req, strlen(req)) <= 0) good = 0;
                        int n, total = 0;
                        while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) total += n;
                        if (total == 0) good = 0;
                    }
                    if (good) ok++; else err++;
                    SSL_shutdown(ssl);
                } else {
                    err++;
                }
                SSL_free(ssl);
                close(s);
                ERR_clear_error();
            }
            char line[128];
            int n = snprintf(line, sizeof(line), "%ld %ld %ld\n", ok, stapled, err);
            if (write(fds[1], line, n) != n) _exit(1);
            _exit(0);
        }
    }
    /* The children report "ok stapled errors" over the pipe when their time is up. */
    close(fds[1]);
    double t0 = now();
    long ok = 0, stapled = 0, err = 0;
    FILE *f = fdopen(fds[0], "r");
    long a, b, c;
    while (fscanf(f, "%ld %ld %ld", &a, &b, &c) == 3) { ok += a; stapled += b; err += c; }
    while (wait(NULL) > 0) ;
    double el = now() - t0;
    if (el < secs) el = secs;
    printf("{\"tool\":\"hsbench\",\"port\":%d,\"sni\":\"%s\",\"tls\":\"%s\",\"status_request\":%d,"
           "\"http\":%s,\"procs\":%d,\"secs\":%.1f,\"handshakes\":%ld,\"per_sec\":%.1f,"
           "\"stapled_fraction\":%.3f,\"errors\":%ld}\n",
           port, sni, tls12 ? "1.2" : "1.3", status, path ? "true" : "false", procs, el, ok,
           ok / el, ok ? (double)stapled / ok : 0.0, err);
    return 0;
}
