/* gitssh_int.h - gitssh.c's parser of ssh remote URLs, for the unit tests
 * (tests/unit/test_gitssh.c); private to lib/. */
#ifndef LANDLORD_GITSSH_INT_H
#define LANDLORD_GITSSH_INT_H

/* An ssh remote URL, split. */
typedef struct ll_ssh_url {
    char user[256]; /* empty when the URL has none */
    char host[256]; /* without [] around an IPv6 address */
    char port[8];
    char path[2048]; /* as the remote command gets it */
} ll_ssh_url;

/* Splits an ssh remote URL: ssh://[user[:password]@]host[:port]/path (also
 * ssh+git://, git+ssh://) or scp-like [user@]host:path, into *out (filled
 * by the caller's storage).  A password in the URL is ignored (ssh remotes
 * log in with a key) and never copied.  The path is what the remote
 * command gets: "/~user/x" becomes "~user/x", as in git.  Returns 0, or -1
 * with the libgit2 error (GIT_ERROR_SSH) set, without the URL, which may
 * hold a password. */
int ll_git_ssh_parse_url(ll_ssh_url *out, const char *url);

#endif
