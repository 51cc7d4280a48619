/* gitstream.h - libgit2's TCP stream for http(s) remotes (private). */
#ifndef LANDLORD_GITSTREAM_H
#define LANDLORD_GITSTREAM_H

/* Makes libgit2 open its plain TCP connections (under TLS too) through this
 * stream: TCP_NODELAY, and timeout_s seconds for the connection and for each
 * read or write after it.  Process-wide; call before any fetch. */
int ll_git_stream_install(int timeout_s);

#endif
