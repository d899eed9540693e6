#include "CCurlShim.h"

#include <curl/curl.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t tb_curl_once = PTHREAD_ONCE_INIT;
static void tb_curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct {
    const char *data;
    size_t length;
    size_t offset;
} tb_body;

static size_t tb_read(char *buffer, size_t size, size_t count, void *user) {
    tb_body *body = (tb_body *)user;
    size_t room = size * count;
    size_t left = body->length - body->offset;
    size_t n = left < room ? left : room;
    memcpy(buffer, body->data + body->offset, n);
    body->offset += n;
    return n;
}

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
) {
    error[0] = 0;
    *reply_code = 0;
    pthread_once(&tb_curl_once, tb_curl_init);
    CURL *curl = curl_easy_init();
    if (!curl) {
        strncpy(error, "curl_easy_init failed", 255);
        return CURLE_FAILED_INIT;
    }
    struct curl_slist *to = NULL;
    for (size_t i = 0; i < recipient_count; i++) to = curl_slist_append(to, recipients[i]);
    tb_body body = {message, message_length, 0};
    char buffer[CURL_ERROR_SIZE];
    buffer[0] = 0;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, buffer);
    if (username && username[0]) curl_easy_setopt(curl, CURLOPT_USERNAME, username);
    if (password && password[0]) curl_easy_setopt(curl, CURLOPT_PASSWORD, password);
    if (ca_file && ca_file[0]) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_USE_SSL, require_tls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_TRY);
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, to);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, tb_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &body);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_seconds);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeout_seconds < 10 ? timeout_seconds : 10L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, reply_code);
    if (code != CURLE_OK) {
        const char *text = buffer[0] ? buffer : curl_easy_strerror(code);
        strncpy(error, text, 255);
        error[255] = 0;
    }
    curl_slist_free_all(to);
    curl_easy_cleanup(curl);
    return (int)code;
}
