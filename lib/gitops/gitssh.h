/* gitssh.h - landlord's transport for ssh:// remotes, on libssh2 (private). */
#ifndef LANDLORD_GITSSH_H
#define LANDLORD_GITSSH_H

/* Makes libgit2 reach ssh://, ssh+git://, git+ssh:// and scp-like
 * ([user@]host:path) remotes through landlord's transport (gitssh.c)
 * instead of its own, which leaks on every connection.  timeout_s bounds
 * the TCP connection and each blocking libssh2 call after it (handshake,
 * authentication, every read and write).  The host key goes to the
 * remote's certificate_check callback and the key file comes from its
 * credentials callback, as with libgit2's transport.
 *
 * Process-wide and idempotent: a second call only updates the timeout.
 * Call with no fetch or push running (before the writer thread starts),
 * after libssh2_init().  Returns 0, or a libgit2 error code with
 * git_error_last() set. */
int ll_git_ssh_install(int timeout_s);

#endif
