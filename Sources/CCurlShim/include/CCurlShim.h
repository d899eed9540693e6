#ifndef TRADEBUS_CCURLSHIM_H
#define TRADEBUS_CCURLSHIM_H

#include <stddef.h>

/// Sends one message over SMTP with libcurl: `curl_easy_setopt` is variadic, which Swift cannot call,
/// so the whole exchange is here. `url` is smtp://host:port (STARTTLS, required when `require_tls`) or
/// smtps://host:port (TLS from the start). `ca_file` (or NULL: the system's) is what the server's
/// certificate is checked against; it is always checked. Returns 0 on success, else libcurl's code,
/// with its message in `error` (at least 256 bytes) and the server's last reply code in `reply_code`.
int tb_smtp_send(
    const char *url,
    const char *username,
    const char *password,
    const char *ca_file,
    int require_tls,
    const char *from,
    const char *const *recipients,
    size_t recipient_count,
    const char *message,
    size_t message_length,
    long timeout_seconds,
    char *error,
    long *reply_code
);

#endif
