/* gitstream.h - libgit2's TCP stream for http(s) remotes (private). */
#ifndef LANDLORD_GITSTREAM_H
#define LANDLORD_GITSTREAM_H

/* Makes libgit2 open its plain TCP connections (under TLS too) through this
 * stream: TCP_NODELAY, and timeout_s seconds for the connection and for each
 * read or write after it.  Process-wide; call before any fetch. */
int ll_git_stream_install(int timeout_s);

/* Opens a TCP connection to host:port (a name or an address; every address
 * it resolves to is tried in turn) within timeout_s seconds, with
 * TCP_NODELAY and timeout_s as SO_RCVTIMEO/SO_SNDTIMEO.  *out: a new socket
 * the caller closes, -1 on failure.  Returns 0, or -1 with a libgit2 error
 * (GIT_ERROR_NET) naming host:port set. */
int ll_git_tcp_connect(int *out, const char *host, const char *port, int timeout_s);

#endif
